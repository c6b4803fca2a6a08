CREATE INDEX `node_leases_seen` ON `node_leases` (`last_seen_at`);--> statement-breakpoint
CREATE INDEX `nodes_not_ready` ON `nodes` (`id`) WHERE ready = 0;--> statement-breakpoint
CREATE INDEX `nodes_draining` ON `nodes` (`id`) WHERE draining = 1;--> statement-breakpoint
CREATE INDEX `nodes_tainted` ON `nodes` (`id`) WHERE taints != '[]';