-- The endpoint triggers of 0005 bumped desired versions with `WHERE id IN (...) OR ... OR EXISTS (a
-- NodePort service)`: SQLite cannot use an index for that OR, so every firing scanned every node
-- row (2 ms at 10,000 nodes; a fleet turning Ready at once blocked the event loop for seconds).
-- Same effect, split by whether a NodePort service is involved (then every node proxies it and
-- every node is bumped); otherwise the nodes are found by primary key.
DROP TRIGGER IF EXISTS `pods_endpoints_changed`;--> statement-breakpoint
CREATE TRIGGER `pods_endpoints_changed` AFTER UPDATE OF `ready`, `desired`, `node_id`, `status` ON `pods`
WHEN (OLD.`ready` IS NOT NEW.`ready` OR OLD.`desired` IS NOT NEW.`desired` OR OLD.`node_id` IS NOT NEW.`node_id`
      OR json_extract(OLD.`status`, '$.containers[0].hostPorts') IS NOT json_extract(NEW.`status`, '$.containers[0].hostPorts'))
  AND EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = NEW.`namespace`)
  AND NOT EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = NEW.`namespace` AND s.`type` = 'NodePort')
BEGIN
  UPDATE `nodes` SET `desired_version` = `desired_version` + 1
  WHERE `id` IN (SELECT p.`node_id` FROM `pods` p WHERE p.`namespace` = NEW.`namespace` AND p.`node_id` IS NOT NULL UNION SELECT OLD.`node_id`);
END;
--> statement-breakpoint
CREATE TRIGGER `pods_endpoints_changed_nodeport` AFTER UPDATE OF `ready`, `desired`, `node_id`, `status` ON `pods`
WHEN (OLD.`ready` IS NOT NEW.`ready` OR OLD.`desired` IS NOT NEW.`desired` OR OLD.`node_id` IS NOT NEW.`node_id`
      OR json_extract(OLD.`status`, '$.containers[0].hostPorts') IS NOT json_extract(NEW.`status`, '$.containers[0].hostPorts'))
  AND EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = NEW.`namespace` AND s.`type` = 'NodePort')
BEGIN
  UPDATE `nodes` SET `desired_version` = `desired_version` + 1;
END;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `nodes_ready_endpoints`;--> statement-breakpoint
CREATE TRIGGER `nodes_ready_endpoints` AFTER UPDATE OF `ready` ON `nodes`
WHEN OLD.`ready` IS NOT NEW.`ready`
  AND NOT EXISTS (SELECT 1 FROM `services` s WHERE s.`type` = 'NodePort' AND s.`namespace` IN (SELECT q.`namespace` FROM `pods` q WHERE q.`node_id` = NEW.`id`))
BEGIN
  UPDATE `nodes` SET `desired_version` = `desired_version` + 1
  WHERE `id` IN (
      SELECT p.`node_id` FROM `pods` p
      WHERE p.`node_id` IS NOT NULL AND p.`namespace` IN (
        SELECT q.`namespace` FROM `pods` q WHERE q.`node_id` = NEW.`id` AND EXISTS (SELECT 1 FROM `services` s WHERE s.`namespace` = q.`namespace`)));
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_ready_endpoints_nodeport` AFTER UPDATE OF `ready` ON `nodes`
WHEN OLD.`ready` IS NOT NEW.`ready`
  AND EXISTS (SELECT 1 FROM `services` s WHERE s.`type` = 'NodePort' AND s.`namespace` IN (SELECT q.`namespace` FROM `pods` q WHERE q.`node_id` = NEW.`id`))
BEGIN
  UPDATE `nodes` SET `desired_version` = `desired_version` + 1;
END;
