-- The backend's schema. Every table but users carries workspace_id, and every query the
-- backend runs filters on it: a row of another workspace is indistinguishable from a
-- missing one.

-- +goose Up
CREATE TABLE workspaces (
    id                uuid PRIMARY KEY,
    name              text NOT NULL,
    retention_days    integer NOT NULL DEFAULT 0,
    anonymous_mode    boolean NOT NULL DEFAULT false,
    default_threshold real NOT NULL DEFAULT 0,
    default_top_k     integer NOT NULL DEFAULT 0,
    create_time       timestamptz NOT NULL DEFAULT now(),
    update_time       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    -- argon2id in the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash text NOT NULL,
    -- A platform operator: may call KIND_SYSTEM methods (create workspaces).
    superuser     boolean NOT NULL DEFAULT false,
    create_time   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role         smallint NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Secrets (session tokens, API keys, agent tokens) are 256 random bits; only their
-- SHA-256 digest is stored.
CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    create_time  timestamptz NOT NULL DEFAULT now(),
    expire_time  timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (workspace_id, user_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    name         text NOT NULL,
    role         smallint NOT NULL,
    prefix       text NOT NULL,
    secret_hash  bytea NOT NULL UNIQUE,
    create_time  timestamptz NOT NULL DEFAULT now(),
    expire_time  timestamptz,
    revoke_time  timestamptz
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id);

CREATE TABLE groups (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    name         text NOT NULL,
    color        text NOT NULL DEFAULT '',
    threshold    real NOT NULL DEFAULT 0,
    notify       boolean NOT NULL DEFAULT false,
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

-- One deployment-wide sequence: every change of a person takes the next value as its
-- version, so an agent syncing "everything after version v" never misses a change.
CREATE SEQUENCE person_version_seq;

CREATE TABLE persons (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    external_id   text,
    name          text NOT NULL,
    custom_fields jsonb NOT NULL DEFAULT '{}',
    main_photo_id uuid,
    version       bigint NOT NULL,
    create_time   timestamptz NOT NULL DEFAULT now(),
    update_time   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX persons_external_id_key ON persons (workspace_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX persons_workspace_id ON persons (workspace_id, id);
CREATE INDEX persons_workspace_version ON persons (workspace_id, version);
CREATE INDEX persons_custom_fields ON persons USING gin (custom_fields jsonb_path_ops);

CREATE TABLE person_groups (
    person_id    uuid NOT NULL REFERENCES persons ON DELETE CASCADE,
    group_id     uuid NOT NULL REFERENCES groups ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    PRIMARY KEY (person_id, group_id)
);
CREATE INDEX person_groups_group ON person_groups (group_id, person_id);

-- Erased persons, so agents syncing by version learn of the deletion.
CREATE TABLE person_tombstones (
    person_id    uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    version      bigint NOT NULL,
    delete_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX person_tombstones_version ON person_tombstones (workspace_id, version);

CREATE TABLE photos (
    id              uuid PRIMARY KEY,
    person_id       uuid NOT NULL REFERENCES persons ON DELETE CASCADE,
    workspace_id    uuid NOT NULL,
    -- Empty in anonymous mode: the image was not kept.
    object_key      text NOT NULL DEFAULT '',
    content_type    text NOT NULL DEFAULT '',
    face_box        real[] NOT NULL,
    face_confidence real NOT NULL DEFAULT 0,
    template_model  text NOT NULL,
    -- The template: little-endian float32s.
    template        bytea NOT NULL,
    create_time     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photos_person ON photos (person_id, id);

CREATE TABLE agents (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    name           text NOT NULL,
    token_hash     bytea NOT NULL UNIQUE,
    token_prefix   text NOT NULL,
    version        text NOT NULL DEFAULT '',
    status         smallint NOT NULL DEFAULT 1,
    last_seen_time timestamptz,
    sync_cursor    bigint NOT NULL DEFAULT 0,
    create_time    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

CREATE TABLE cameras (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    agent_id      uuid NOT NULL REFERENCES agents ON DELETE CASCADE,
    name          text NOT NULL,
    location      text NOT NULL DEFAULT '',
    source_url    text NOT NULL DEFAULT '',
    min_face_size integer NOT NULL DEFAULT 0,
    -- x1, y1, x2, y2 normalised; NULL for the whole frame.
    roi           real[],
    status        smallint NOT NULL DEFAULT 0,
    create_time   timestamptz NOT NULL DEFAULT now(),
    update_time   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cameras_workspace ON cameras (workspace_id, id);

-- Events are WRITTEN by event-service (idempotently on id, which the agent assigns) and
-- read here by EventQueryService. The table lives in the backend's migrations so it is
-- queryable before event-service exists; event-service must not create its own.
-- person_id and group_id carry no foreign key: an event outlives an erased person (the
-- erase clears the link).
CREATE TABLE events (
    id               text PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    type             smallint NOT NULL,
    event_time       timestamptz NOT NULL,
    camera_id        uuid,
    agent_id         uuid,
    activity_id      text NOT NULL DEFAULT '',
    person_id        uuid,
    group_id         uuid,
    score            real NOT NULL DEFAULT 0,
    age              real,
    gender           smallint NOT NULL DEFAULT 0,
    emotion          text NOT NULL DEFAULT '',
    mask             boolean,
    live             boolean,
    quality          real,
    face_object_key  text NOT NULL DEFAULT '',
    frame_object_key text NOT NULL DEFAULT '',
    face_box         real[],
    create_time      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_workspace_time ON events (workspace_id, event_time DESC, id DESC);
CREATE INDEX events_workspace_person ON events (workspace_id, person_id, event_time DESC);
CREATE INDEX events_workspace_camera ON events (workspace_id, camera_id, event_time DESC);

CREATE TABLE webhooks (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    url          text NOT NULL,
    -- Kept in clear: it signs every delivery.
    secret       text NOT NULL,
    event_types  smallint[] NOT NULL DEFAULT '{}',
    group_ids    uuid[] NOT NULL DEFAULT '{}',
    camera_ids   uuid[] NOT NULL DEFAULT '{}',
    enabled      boolean NOT NULL DEFAULT true,
    batch_size   integer NOT NULL DEFAULT 1,
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, id);

CREATE TABLE webhook_deliveries (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL,
    webhook_id    uuid NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_ids     text[] NOT NULL DEFAULT '{}',
    attempt       integer NOT NULL,
    status_code   integer NOT NULL DEFAULT 0,
    succeeded     boolean NOT NULL,
    error         text NOT NULL DEFAULT '',
    delivery_time timestamptz NOT NULL,
    duration_ms   integer NOT NULL DEFAULT 0
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id DESC);

CREATE TABLE audit_entries (
    id           uuid PRIMARY KEY,
    time         timestamptz NOT NULL,
    -- NULL for platform-level calls.
    workspace_id uuid,
    subject_kind smallint NOT NULL,
    subject_id   text NOT NULL DEFAULT '',
    subject_name text NOT NULL DEFAULT '',
    method       text NOT NULL,
    target       text NOT NULL DEFAULT '',
    peer_addr    text NOT NULL DEFAULT '',
    outcome      text NOT NULL,
    message      text NOT NULL DEFAULT '',
    request_id   text NOT NULL DEFAULT ''
);
CREATE INDEX audit_entries_workspace ON audit_entries (workspace_id, id DESC);

-- Results of mutating calls by request_id, so a retried call returns the first result.
-- Written in the same transaction as the change itself.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    request_id   text NOT NULL,
    method       text NOT NULL,
    request_hash bytea NOT NULL,
    response     bytea NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, request_id)
);

-- +goose Down
DROP TABLE idempotency_keys, audit_entries, webhook_deliveries, webhooks, events, cameras,
    agents, photos, person_tombstones, person_groups, persons, groups, api_keys, sessions,
    memberships, users, workspaces;
DROP SEQUENCE person_version_seq;
