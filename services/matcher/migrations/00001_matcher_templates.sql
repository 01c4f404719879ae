-- +goose Up
-- Templates of the 1:N index. PostgreSQL is the source of truth: each matcher replica
-- rebuilds its in-memory index from these rows at start. Vectors are little-endian
-- float32 in bytea, read back with binary COPY.
CREATE TABLE matcher_templates (
    workspace_id text NOT NULL,
    template_id  text NOT NULL,
    person_id    text NOT NULL,
    -- FNV-1a 32-bit hash of person_id: a replica loads the rows with
    -- person_hash % shard_count = its shard.
    person_hash  bigint NOT NULL,
    model_id     text NOT NULL,
    vector       bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, template_id)
);
CREATE INDEX matcher_templates_person ON matcher_templates (workspace_id, person_id);

-- Groups (watch lists) of persons, as the matcher filters by them.
CREATE TABLE matcher_person_groups (
    workspace_id text NOT NULL,
    person_id    text NOT NULL,
    person_hash  bigint NOT NULL,
    group_ids    text[] NOT NULL,
    PRIMARY KEY (workspace_id, person_id)
);

-- +goose Down
DROP TABLE matcher_person_groups;
DROP TABLE matcher_templates;
