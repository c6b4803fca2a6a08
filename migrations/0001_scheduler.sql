DROP INDEX `deployments_ns_name`;--> statement-breakpoint
ALTER TABLE `deployments` ADD `kind` text DEFAULT 'Deployment' NOT NULL;--> statement-breakpoint
ALTER TABLE `deployments` ADD `want` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `deployments` ADD `observed_fleet` integer DEFAULT -1 NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `deployments_ns_kind_name` ON `deployments` (`namespace`,`kind`,`name`);--> statement-breakpoint
ALTER TABLE `nodes` ADD `draining` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `nodes` ADD `taints` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `nodes` ADD `allocatable` text;--> statement-breakpoint
ALTER TABLE `nodes` ADD `ready` integer DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE `pods` ADD `cpu_request` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `pods` ADD `memory_request` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `pods` ADD `host_ports` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `pods` ADD `policy` text DEFAULT 'stop' NOT NULL;--> statement-breakpoint
ALTER TABLE `pods` ADD `pinned_node` text;