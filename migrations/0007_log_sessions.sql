CREATE TABLE `log_chunks` (
	`session_id` text NOT NULL,
	`seq` integer NOT NULL,
	`data` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `log_chunks_pk` ON `log_chunks` (`session_id`,`seq`);--> statement-breakpoint
CREATE TABLE `log_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`node_id` text NOT NULL,
	`pod_id` text NOT NULL,
	`container` text NOT NULL,
	`tail_lines` integer,
	`since_seconds` integer,
	`follow` integer NOT NULL,
	`limit_bytes` integer NOT NULL,
	`state` text NOT NULL,
	`error` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `log_sessions_node` ON `log_sessions` (`node_id`,`state`);