CREATE TABLE `api_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`hash` text NOT NULL,
	`scope` text NOT NULL,
	`namespaces` text,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_tokens_hash_unique` ON `api_tokens` (`hash`);--> statement-breakpoint
CREATE TABLE `controller_locks` (
	`name` text PRIMARY KEY NOT NULL,
	`until` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `deployments` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`annotations` text DEFAULT '{}' NOT NULL,
	`spec` text NOT NULL,
	`generation` integer NOT NULL,
	`revision` integer NOT NULL,
	`template_digest` text NOT NULL,
	`plan_version` integer DEFAULT 0 NOT NULL,
	`plan_stamp` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deployments_ns_name` ON `deployments` (`namespace`,`name`);--> statement-breakpoint
CREATE TABLE `enrollment_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`max_uses` integer NOT NULL,
	`uses` integer DEFAULT 0 NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`expires_at` integer NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `enrollment_tokens_hash_unique` ON `enrollment_tokens` (`hash`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`namespace` text NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`type` text NOT NULL,
	`reason` text NOT NULL,
	`message` text NOT NULL,
	`source` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `events_object` ON `events` (`namespace`,`kind`,`name`);--> statement-breakpoint
CREATE INDEX `events_at` ON `events` (`at`);--> statement-breakpoint
CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `namespaces` (
	`name` text PRIMARY KEY NOT NULL,
	`uid` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `node_leases` (
	`node_id` text PRIMARY KEY NOT NULL,
	`last_seen_at` integer NOT NULL,
	`lease_expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `nodes` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`public_key` text NOT NULL,
	`encryption_key` text,
	`labels` text DEFAULT '{}' NOT NULL,
	`facts` text NOT NULL,
	`enrollment_token_id` text,
	`enrolled_at` integer NOT NULL,
	`revoked_at` integer,
	`cordoned` integer DEFAULT false NOT NULL,
	`desired_version` integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `nodes_live_name` ON `nodes` (`name`) WHERE revoked_at IS NULL;--> statement-breakpoint
CREATE INDEX `nodes_revoked` ON `nodes` (`revoked_at`);--> statement-breakpoint
CREATE TABLE `pods` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`deployment_id` text NOT NULL,
	`workload` text NOT NULL,
	`revision` integer NOT NULL,
	`spec` text NOT NULL,
	`spec_digest` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`node_id` text,
	`epoch` integer DEFAULT 0 NOT NULL,
	`desired` text DEFAULT 'run' NOT NULL,
	`phase` text DEFAULT 'Pending' NOT NULL,
	`ready` integer DEFAULT false NOT NULL,
	`reason` text,
	`message` text,
	`status` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`deletion_requested_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `pods_ns_name` ON `pods` (`namespace`,`name`);--> statement-breakpoint
CREATE INDEX `pods_node` ON `pods` (`node_id`);--> statement-breakpoint
CREATE INDEX `pods_deployment` ON `pods` (`deployment_id`);--> statement-breakpoint
CREATE INDEX `pods_pending` ON `pods` (`created_at`) WHERE node_id IS NULL AND desired = 'run';--> statement-breakpoint
CREATE INDEX `pods_stopping` ON `pods` (`node_id`) WHERE desired = 'stop';--> statement-breakpoint
CREATE TABLE `revisions` (
	`deployment_id` text NOT NULL,
	`revision` integer NOT NULL,
	`template` text NOT NULL,
	`digest` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `revisions_pk` ON `revisions` (`deployment_id`,`revision`);--> statement-breakpoint
CREATE TABLE `signing_keys` (
	`kid` text PRIMARY KEY NOT NULL,
	`private_jwk` text NOT NULL,
	`public_jwk` text NOT NULL,
	`created_at` integer NOT NULL,
	`retired_at` integer
);
