CREATE TABLE `config_objects` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`type` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`annotations` text DEFAULT '{}' NOT NULL,
	`keys` text NOT NULL,
	`data` text NOT NULL,
	`kid` text,
	`version` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `config_objects_ns_kind_name` ON `config_objects` (`namespace`,`kind`,`name`);