CREATE TABLE `services` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`type` text NOT NULL,
	`spec` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`annotations` text DEFAULT '{}' NOT NULL,
	`cluster_ip` text NOT NULL,
	`version` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `services_ns_name` ON `services` (`namespace`,`name`);--> statement-breakpoint
CREATE UNIQUE INDEX `services_cluster_ip` ON `services` (`cluster_ip`);--> statement-breakpoint
-- Service endpoints travel in the desired state of every node that proxies them (nodes running pods
-- of the namespace, and every node for a namespace with a NodePort service). Whatever changes the
-- endpoints of a namespace with services bumps those nodes' desired versions, in the same
-- transaction as the change, wherever in the code it is made: readiness, termination, placement,
-- a new published port, a node turning Ready or NotReady.
CREATE TRIGGER `pods_endpoints_changed` AFTER UPDATE OF `ready`, `desired`, `node_id`, `status` ON `pods`
WHEN (OLD.`ready` IS NOT NEW.`ready` OR OLD.`desired` IS NOT NEW.`desired` OR OLD.`node_id` IS NOT NEW.`node_id`
      OR json_extract(OLD.`status`, '$.containers[0].hostPorts') IS NOT json_extract(NEW.`status`, '$.containers[0].hostPorts'))
  AND EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = NEW.`namespace`)
BEGIN
  UPDATE `nodes` SET `desired_version` = `desired_version` + 1
  WHERE `id` IN (SELECT p.`node_id` FROM `pods` p WHERE p.`namespace` = NEW.`namespace` AND p.`node_id` IS NOT NULL)
     OR `id` = OLD.`node_id`
     OR EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = NEW.`namespace` AND s.`type` = 'NodePort');
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_ready_endpoints` AFTER UPDATE OF `ready` ON `nodes`
WHEN OLD.`ready` IS NOT NEW.`ready`
BEGIN
  UPDATE `nodes` SET `desired_version` = `desired_version` + 1
  WHERE `id` IN (
      SELECT p.`node_id` FROM `pods` p
      WHERE p.`node_id` IS NOT NULL AND p.`namespace` IN (
        SELECT q.`namespace` FROM `pods` q WHERE q.`node_id` = NEW.`id` AND EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = q.`namespace`)))
     OR EXISTS (
      SELECT 1 FROM `services` s WHERE s.`type` = 'NodePort' AND s.`namespace` IN (SELECT q.`namespace` FROM `pods` q WHERE q.`node_id` = NEW.`id`));
END;
