CREATE TABLE `changes` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`type` text NOT NULL,
	`object` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `changes_kind_ns` ON `changes` (`kind`,`namespace`,`seq`);--> statement-breakpoint
CREATE INDEX `changes_object` ON `changes` (`kind`,`namespace`,`name`,`seq`);--> statement-breakpoint
CREATE INDEX `changes_at` ON `changes` (`at`);--> statement-breakpoint
CREATE TABLE `preconditions` (
	`ok` integer NOT NULL,
	CONSTRAINT "preconditions_ok" CHECK("preconditions"."ok" = 1)
);
--> statement-breakpoint
-- Existing objects get a first change (their resourceVersion); then every committed change of a watched object is copied into `changes` by triggers.
INSERT INTO `changes` (kind, namespace, name, type, object, at) SELECT t.kind, t.namespace, t.name, 'ADDED', json_object('id', t.id, 'kind', t.kind, 'want', t.want, 'observed_fleet', t.observed_fleet, 'namespace', t.namespace, 'name', t.name, 'labels', t.labels, 'annotations', t.annotations, 'spec', t.spec, 'generation', t.generation, 'revision', t.revision, 'template_digest', t.template_digest, 'plan_version', t.plan_version, 'plan_stamp', t.plan_stamp, 'rollout', t.rollout, 'stable_revision', t.stable_revision, 'promoted_revision', t.promoted_revision, 'created_at', t.created_at, 'updated_at', t.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `deployments` t;
--> statement-breakpoint
INSERT INTO `changes` (kind, namespace, name, type, object, at) SELECT 'Pod', t.namespace, t.name, 'ADDED', json_object('id', t.id, 'namespace', t.namespace, 'name', t.name, 'deployment_id', t.deployment_id, 'workload', t.workload, 'revision', t.revision, 'spec', t.spec, 'spec_digest', t.spec_digest, 'labels', t.labels, 'cpu_request', t.cpu_request, 'memory_request', t.memory_request, 'host_ports', t.host_ports, 'policy', t.policy, 'pinned_node', t.pinned_node, 'node_id', t.node_id, 'epoch', t.epoch, 'desired', t.desired, 'phase', t.phase, 'ready', t.ready, 'ready_since', t.ready_since, 'restarts', t.restarts, 'reason', t.reason, 'message', t.message, 'status', t.status, 'created_at', t.created_at, 'updated_at', t.updated_at, 'deletion_requested_at', t.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `pods` t;
--> statement-breakpoint
INSERT INTO `changes` (kind, namespace, name, type, object, at) SELECT t.kind, t.namespace, t.name, 'ADDED', json_object('id', t.id, 'namespace', t.namespace, 'kind', t.kind, 'name', t.name, 'type', t.type, 'labels', t.labels, 'annotations', t.annotations, 'keys', t.keys, 'data', CASE WHEN t.kind = 'ConfigMap' THEN t.data END, 'kid', t.kid, 'version', t.version, 'created_at', t.created_at, 'updated_at', t.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `config_objects` t;
--> statement-breakpoint
INSERT INTO `changes` (kind, namespace, name, type, object, at) SELECT 'Service', t.namespace, t.name, 'ADDED', json_object('id', t.id, 'namespace', t.namespace, 'name', t.name, 'type', t.type, 'spec', t.spec, 'labels', t.labels, 'annotations', t.annotations, 'cluster_ip', t.cluster_ip, 'version', t.version, 'created_at', t.created_at, 'updated_at', t.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `services` t;
--> statement-breakpoint
INSERT INTO `changes` (kind, namespace, name, type, object, at) SELECT 'PersistentVolumeClaim', t.namespace, t.name, 'ADDED', json_object('id', t.id, 'namespace', t.namespace, 'name', t.name, 'storage_class', t.storage_class, 'storage_bytes', t.storage_bytes, 'storage', t.storage, 'access_modes', t.access_modes, 'reclaim_policy', t.reclaim_policy, 'labels', t.labels, 'annotations', t.annotations, 'node_id', t.node_id, 'phase', t.phase, 'bound_at', t.bound_at, 'version', t.version, 'created_at', t.created_at, 'updated_at', t.updated_at, 'deletion_requested_at', t.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `volume_claims` t;
--> statement-breakpoint
INSERT INTO `changes` (kind, namespace, name, type, object, at) SELECT 'Node', '', t.name, 'ADDED', json_object('id', t.id, 'name', t.name, 'public_key', t.public_key, 'encryption_key', t.encryption_key, 'labels', t.labels, 'facts', t.facts, 'enrollment_token_id', t.enrollment_token_id, 'enrolled_at', t.enrolled_at, 'revoked_at', t.revoked_at, 'cordoned', t.cordoned, 'draining', t.draining, 'taints', t.taints, 'allocatable', t.allocatable, 'ready', t.ready, 'desired_version', t.desired_version), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `nodes` t;
--> statement-breakpoint
CREATE TRIGGER `deployments_watch_insert` AFTER INSERT ON `deployments`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES (NEW.kind, NEW.namespace, NEW.name, 'ADDED', json_object('id', NEW.id, 'kind', NEW.kind, 'want', NEW.want, 'observed_fleet', NEW.observed_fleet, 'namespace', NEW.namespace, 'name', NEW.name, 'labels', NEW.labels, 'annotations', NEW.annotations, 'spec', NEW.spec, 'generation', NEW.generation, 'revision', NEW.revision, 'template_digest', NEW.template_digest, 'plan_version', NEW.plan_version, 'plan_stamp', NEW.plan_stamp, 'rollout', NEW.rollout, 'stable_revision', NEW.stable_revision, 'promoted_revision', NEW.promoted_revision, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `deployments_watch_update` AFTER UPDATE ON `deployments`
WHEN OLD.id IS NOT NEW.id OR OLD.kind IS NOT NEW.kind OR OLD.namespace IS NOT NEW.namespace OR OLD.name IS NOT NEW.name OR OLD.labels IS NOT NEW.labels OR OLD.annotations IS NOT NEW.annotations OR OLD.spec IS NOT NEW.spec OR OLD.generation IS NOT NEW.generation OR OLD.revision IS NOT NEW.revision OR OLD.template_digest IS NOT NEW.template_digest OR OLD.rollout IS NOT NEW.rollout OR OLD.stable_revision IS NOT NEW.stable_revision OR OLD.promoted_revision IS NOT NEW.promoted_revision OR OLD.created_at IS NOT NEW.created_at
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES (NEW.kind, NEW.namespace, NEW.name, 'MODIFIED', json_object('id', NEW.id, 'kind', NEW.kind, 'want', NEW.want, 'observed_fleet', NEW.observed_fleet, 'namespace', NEW.namespace, 'name', NEW.name, 'labels', NEW.labels, 'annotations', NEW.annotations, 'spec', NEW.spec, 'generation', NEW.generation, 'revision', NEW.revision, 'template_digest', NEW.template_digest, 'plan_version', NEW.plan_version, 'plan_stamp', NEW.plan_stamp, 'rollout', NEW.rollout, 'stable_revision', NEW.stable_revision, 'promoted_revision', NEW.promoted_revision, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `deployments_watch_delete` AFTER DELETE ON `deployments`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES (OLD.kind, OLD.namespace, OLD.name, 'DELETED', json_object('id', OLD.id, 'kind', OLD.kind, 'want', OLD.want, 'observed_fleet', OLD.observed_fleet, 'namespace', OLD.namespace, 'name', OLD.name, 'labels', OLD.labels, 'annotations', OLD.annotations, 'spec', OLD.spec, 'generation', OLD.generation, 'revision', OLD.revision, 'template_digest', OLD.template_digest, 'plan_version', OLD.plan_version, 'plan_stamp', OLD.plan_stamp, 'rollout', OLD.rollout, 'stable_revision', OLD.stable_revision, 'promoted_revision', OLD.promoted_revision, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `pods_watch_insert` AFTER INSERT ON `pods`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Pod', NEW.namespace, NEW.name, 'ADDED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'name', NEW.name, 'deployment_id', NEW.deployment_id, 'workload', NEW.workload, 'revision', NEW.revision, 'spec', NEW.spec, 'spec_digest', NEW.spec_digest, 'labels', NEW.labels, 'cpu_request', NEW.cpu_request, 'memory_request', NEW.memory_request, 'host_ports', NEW.host_ports, 'policy', NEW.policy, 'pinned_node', NEW.pinned_node, 'node_id', NEW.node_id, 'epoch', NEW.epoch, 'desired', NEW.desired, 'phase', NEW.phase, 'ready', NEW.ready, 'ready_since', NEW.ready_since, 'restarts', NEW.restarts, 'reason', NEW.reason, 'message', NEW.message, 'status', NEW.status, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at, 'deletion_requested_at', NEW.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `pods_watch_update` AFTER UPDATE ON `pods`
WHEN OLD.id IS NOT NEW.id OR OLD.namespace IS NOT NEW.namespace OR OLD.name IS NOT NEW.name OR OLD.deployment_id IS NOT NEW.deployment_id OR OLD.workload IS NOT NEW.workload OR OLD.revision IS NOT NEW.revision OR OLD.spec IS NOT NEW.spec OR OLD.spec_digest IS NOT NEW.spec_digest OR OLD.labels IS NOT NEW.labels OR OLD.cpu_request IS NOT NEW.cpu_request OR OLD.memory_request IS NOT NEW.memory_request OR OLD.host_ports IS NOT NEW.host_ports OR OLD.policy IS NOT NEW.policy OR OLD.pinned_node IS NOT NEW.pinned_node OR OLD.node_id IS NOT NEW.node_id OR OLD.epoch IS NOT NEW.epoch OR OLD.desired IS NOT NEW.desired OR OLD.phase IS NOT NEW.phase OR OLD.ready IS NOT NEW.ready OR OLD.ready_since IS NOT NEW.ready_since OR OLD.restarts IS NOT NEW.restarts OR OLD.reason IS NOT NEW.reason OR OLD.message IS NOT NEW.message OR OLD.status IS NOT NEW.status OR OLD.created_at IS NOT NEW.created_at OR OLD.deletion_requested_at IS NOT NEW.deletion_requested_at
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Pod', NEW.namespace, NEW.name, 'MODIFIED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'name', NEW.name, 'deployment_id', NEW.deployment_id, 'workload', NEW.workload, 'revision', NEW.revision, 'spec', NEW.spec, 'spec_digest', NEW.spec_digest, 'labels', NEW.labels, 'cpu_request', NEW.cpu_request, 'memory_request', NEW.memory_request, 'host_ports', NEW.host_ports, 'policy', NEW.policy, 'pinned_node', NEW.pinned_node, 'node_id', NEW.node_id, 'epoch', NEW.epoch, 'desired', NEW.desired, 'phase', NEW.phase, 'ready', NEW.ready, 'ready_since', NEW.ready_since, 'restarts', NEW.restarts, 'reason', NEW.reason, 'message', NEW.message, 'status', NEW.status, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at, 'deletion_requested_at', NEW.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `pods_watch_delete` AFTER DELETE ON `pods`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Pod', OLD.namespace, OLD.name, 'DELETED', json_object('id', OLD.id, 'namespace', OLD.namespace, 'name', OLD.name, 'deployment_id', OLD.deployment_id, 'workload', OLD.workload, 'revision', OLD.revision, 'spec', OLD.spec, 'spec_digest', OLD.spec_digest, 'labels', OLD.labels, 'cpu_request', OLD.cpu_request, 'memory_request', OLD.memory_request, 'host_ports', OLD.host_ports, 'policy', OLD.policy, 'pinned_node', OLD.pinned_node, 'node_id', OLD.node_id, 'epoch', OLD.epoch, 'desired', OLD.desired, 'phase', OLD.phase, 'ready', OLD.ready, 'ready_since', OLD.ready_since, 'restarts', OLD.restarts, 'reason', OLD.reason, 'message', OLD.message, 'status', OLD.status, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at, 'deletion_requested_at', OLD.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `config_objects_watch_insert` AFTER INSERT ON `config_objects`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES (NEW.kind, NEW.namespace, NEW.name, 'ADDED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'kind', NEW.kind, 'name', NEW.name, 'type', NEW.type, 'labels', NEW.labels, 'annotations', NEW.annotations, 'keys', NEW.keys, 'data', CASE WHEN NEW.kind = 'ConfigMap' THEN NEW.data END, 'kid', NEW.kid, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `config_objects_watch_update` AFTER UPDATE ON `config_objects`
WHEN OLD.id IS NOT NEW.id OR OLD.namespace IS NOT NEW.namespace OR OLD.kind IS NOT NEW.kind OR OLD.name IS NOT NEW.name OR OLD.type IS NOT NEW.type OR OLD.labels IS NOT NEW.labels OR OLD.annotations IS NOT NEW.annotations OR OLD.keys IS NOT NEW.keys OR OLD.data IS NOT NEW.data OR OLD.kid IS NOT NEW.kid OR OLD.version IS NOT NEW.version OR OLD.created_at IS NOT NEW.created_at
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES (NEW.kind, NEW.namespace, NEW.name, 'MODIFIED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'kind', NEW.kind, 'name', NEW.name, 'type', NEW.type, 'labels', NEW.labels, 'annotations', NEW.annotations, 'keys', NEW.keys, 'data', CASE WHEN NEW.kind = 'ConfigMap' THEN NEW.data END, 'kid', NEW.kid, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `config_objects_watch_delete` AFTER DELETE ON `config_objects`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES (OLD.kind, OLD.namespace, OLD.name, 'DELETED', json_object('id', OLD.id, 'namespace', OLD.namespace, 'kind', OLD.kind, 'name', OLD.name, 'type', OLD.type, 'labels', OLD.labels, 'annotations', OLD.annotations, 'keys', OLD.keys, 'data', CASE WHEN OLD.kind = 'ConfigMap' THEN OLD.data END, 'kid', OLD.kid, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `services_watch_insert` AFTER INSERT ON `services`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Service', NEW.namespace, NEW.name, 'ADDED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'name', NEW.name, 'type', NEW.type, 'spec', NEW.spec, 'labels', NEW.labels, 'annotations', NEW.annotations, 'cluster_ip', NEW.cluster_ip, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `services_watch_update` AFTER UPDATE ON `services`
WHEN OLD.id IS NOT NEW.id OR OLD.namespace IS NOT NEW.namespace OR OLD.name IS NOT NEW.name OR OLD.type IS NOT NEW.type OR OLD.spec IS NOT NEW.spec OR OLD.labels IS NOT NEW.labels OR OLD.annotations IS NOT NEW.annotations OR OLD.cluster_ip IS NOT NEW.cluster_ip OR OLD.version IS NOT NEW.version OR OLD.created_at IS NOT NEW.created_at
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Service', NEW.namespace, NEW.name, 'MODIFIED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'name', NEW.name, 'type', NEW.type, 'spec', NEW.spec, 'labels', NEW.labels, 'annotations', NEW.annotations, 'cluster_ip', NEW.cluster_ip, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `services_watch_delete` AFTER DELETE ON `services`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Service', OLD.namespace, OLD.name, 'DELETED', json_object('id', OLD.id, 'namespace', OLD.namespace, 'name', OLD.name, 'type', OLD.type, 'spec', OLD.spec, 'labels', OLD.labels, 'annotations', OLD.annotations, 'cluster_ip', OLD.cluster_ip, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `volume_claims_watch_insert` AFTER INSERT ON `volume_claims`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('PersistentVolumeClaim', NEW.namespace, NEW.name, 'ADDED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'name', NEW.name, 'storage_class', NEW.storage_class, 'storage_bytes', NEW.storage_bytes, 'storage', NEW.storage, 'access_modes', NEW.access_modes, 'reclaim_policy', NEW.reclaim_policy, 'labels', NEW.labels, 'annotations', NEW.annotations, 'node_id', NEW.node_id, 'phase', NEW.phase, 'bound_at', NEW.bound_at, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at, 'deletion_requested_at', NEW.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `volume_claims_watch_update` AFTER UPDATE ON `volume_claims`
WHEN OLD.id IS NOT NEW.id OR OLD.namespace IS NOT NEW.namespace OR OLD.name IS NOT NEW.name OR OLD.storage_class IS NOT NEW.storage_class OR OLD.storage_bytes IS NOT NEW.storage_bytes OR OLD.storage IS NOT NEW.storage OR OLD.access_modes IS NOT NEW.access_modes OR OLD.reclaim_policy IS NOT NEW.reclaim_policy OR OLD.labels IS NOT NEW.labels OR OLD.annotations IS NOT NEW.annotations OR OLD.node_id IS NOT NEW.node_id OR OLD.phase IS NOT NEW.phase OR OLD.bound_at IS NOT NEW.bound_at OR OLD.version IS NOT NEW.version OR OLD.created_at IS NOT NEW.created_at OR OLD.deletion_requested_at IS NOT NEW.deletion_requested_at
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('PersistentVolumeClaim', NEW.namespace, NEW.name, 'MODIFIED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'name', NEW.name, 'storage_class', NEW.storage_class, 'storage_bytes', NEW.storage_bytes, 'storage', NEW.storage, 'access_modes', NEW.access_modes, 'reclaim_policy', NEW.reclaim_policy, 'labels', NEW.labels, 'annotations', NEW.annotations, 'node_id', NEW.node_id, 'phase', NEW.phase, 'bound_at', NEW.bound_at, 'version', NEW.version, 'created_at', NEW.created_at, 'updated_at', NEW.updated_at, 'deletion_requested_at', NEW.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `volume_claims_watch_delete` AFTER DELETE ON `volume_claims`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('PersistentVolumeClaim', OLD.namespace, OLD.name, 'DELETED', json_object('id', OLD.id, 'namespace', OLD.namespace, 'name', OLD.name, 'storage_class', OLD.storage_class, 'storage_bytes', OLD.storage_bytes, 'storage', OLD.storage, 'access_modes', OLD.access_modes, 'reclaim_policy', OLD.reclaim_policy, 'labels', OLD.labels, 'annotations', OLD.annotations, 'node_id', OLD.node_id, 'phase', OLD.phase, 'bound_at', OLD.bound_at, 'version', OLD.version, 'created_at', OLD.created_at, 'updated_at', OLD.updated_at, 'deletion_requested_at', OLD.deletion_requested_at), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_watch_insert` AFTER INSERT ON `nodes`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Node', '', NEW.name, 'ADDED', json_object('id', NEW.id, 'name', NEW.name, 'public_key', NEW.public_key, 'encryption_key', NEW.encryption_key, 'labels', NEW.labels, 'facts', NEW.facts, 'enrollment_token_id', NEW.enrollment_token_id, 'enrolled_at', NEW.enrolled_at, 'revoked_at', NEW.revoked_at, 'cordoned', NEW.cordoned, 'draining', NEW.draining, 'taints', NEW.taints, 'allocatable', NEW.allocatable, 'ready', NEW.ready, 'desired_version', NEW.desired_version), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_watch_update` AFTER UPDATE ON `nodes`
WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR OLD.public_key IS NOT NEW.public_key OR OLD.encryption_key IS NOT NEW.encryption_key OR OLD.labels IS NOT NEW.labels OR OLD.facts IS NOT NEW.facts OR OLD.enrollment_token_id IS NOT NEW.enrollment_token_id OR OLD.enrolled_at IS NOT NEW.enrolled_at OR OLD.revoked_at IS NOT NEW.revoked_at OR OLD.cordoned IS NOT NEW.cordoned OR OLD.draining IS NOT NEW.draining OR OLD.taints IS NOT NEW.taints OR OLD.allocatable IS NOT NEW.allocatable OR OLD.ready IS NOT NEW.ready
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Node', '', NEW.name, 'MODIFIED', json_object('id', NEW.id, 'name', NEW.name, 'public_key', NEW.public_key, 'encryption_key', NEW.encryption_key, 'labels', NEW.labels, 'facts', NEW.facts, 'enrollment_token_id', NEW.enrollment_token_id, 'enrolled_at', NEW.enrolled_at, 'revoked_at', NEW.revoked_at, 'cordoned', NEW.cordoned, 'draining', NEW.draining, 'taints', NEW.taints, 'allocatable', NEW.allocatable, 'ready', NEW.ready, 'desired_version', NEW.desired_version), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_watch_delete` AFTER DELETE ON `nodes`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Node', '', OLD.name, 'DELETED', json_object('id', OLD.id, 'name', OLD.name, 'public_key', OLD.public_key, 'encryption_key', OLD.encryption_key, 'labels', OLD.labels, 'facts', OLD.facts, 'enrollment_token_id', OLD.enrollment_token_id, 'enrolled_at', OLD.enrolled_at, 'revoked_at', OLD.revoked_at, 'cordoned', OLD.cordoned, 'draining', OLD.draining, 'taints', OLD.taints, 'allocatable', OLD.allocatable, 'ready', OLD.ready, 'desired_version', OLD.desired_version), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
END;
--> statement-breakpoint
CREATE TRIGGER `events_watch_insert` AFTER INSERT ON `events`
BEGIN
  INSERT INTO `changes` (kind, namespace, name, type, object, at) VALUES ('Event', NEW.namespace, CAST(NEW.id AS TEXT), 'ADDED', json_object('id', NEW.id, 'namespace', NEW.namespace, 'kind', NEW.kind, 'name', NEW.name, 'type', NEW.type, 'reason', NEW.reason, 'message', NEW.message, 'source', NEW.source, 'at', NEW.at), NEW.at);
END;
