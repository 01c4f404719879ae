-- +goose Up
-- Usage counts reported by the services that own counted resources: the latest absolute
-- count per workspace and resource. Kept in PostgreSQL so a licensing restart, or several
-- licensing replicas, see the same usage.
CREATE TABLE licensing_usage (
    resource     text        NOT NULL CHECK (resource IN ('persons', 'agents', 'cameras')),
    workspace_id text        NOT NULL,
    count        bigint      NOT NULL CHECK (count >= 0),
    report_time  timestamptz NOT NULL,
    PRIMARY KEY (resource, workspace_id)
);

-- +goose Down
DROP TABLE licensing_usage;
