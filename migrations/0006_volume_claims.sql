CREATE TABLE `volume_claims` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`storage_class` text NOT NULL,
	`storage_bytes` integer NOT NULL,
	`storage` text NOT NULL,
	`access_modes` text NOT NULL,
	`reclaim_policy` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`annotations` text DEFAULT '{}' NOT NULL,
	`node_id` text,
	`phase` text NOT NULL,
	`bound_at` integer,
	`version` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`deletion_requested_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `volume_claims_ns_name` ON `volume_claims` (`namespace`,`name`);--> statement-breakpoint
CREATE INDEX `volume_claims_node` ON `volume_claims` (`node_id`);