CREATE TABLE `usage` (
	`node_id` text NOT NULL,
	`pod_id` text NOT NULL,
	`cpu` integer NOT NULL,
	`memory` integer NOT NULL,
	`containers` text DEFAULT '[]' NOT NULL,
	`window` integer NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `usage_pk` ON `usage` (`node_id`,`pod_id`);