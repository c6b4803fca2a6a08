DROP INDEX `pods_deployment`;--> statement-breakpoint
CREATE INDEX `pods_workload` ON `pods` (`deployment_id`,`desired`,`revision`);