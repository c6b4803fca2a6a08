ALTER TABLE `deployments` ADD `rollout` text;--> statement-breakpoint
ALTER TABLE `deployments` ADD `stable_revision` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `deployments` ADD `promoted_revision` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `pods` ADD `restarts` integer DEFAULT 0 NOT NULL;