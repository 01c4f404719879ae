-- Events waiting to be batched into one POST for webhooks with batch_size > 1. A row
-- stays after it is batched (delivery_job_id set), so a replayed notification cannot
-- queue the event again; the retention sweep deletes batched rows after a week.

-- +goose Up
CREATE TABLE tasks_webhook_pending (
    workspace_id    text NOT NULL,
    webhook_id      text NOT NULL,
    event_id        text NOT NULL,
    body            bytea NOT NULL,
    create_time     timestamptz NOT NULL DEFAULT now(),
    delivery_job_id bigint,
    PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX tasks_webhook_pending_open ON tasks_webhook_pending (webhook_id, create_time, event_id)
    WHERE delivery_job_id IS NULL;
CREATE INDEX tasks_webhook_pending_done ON tasks_webhook_pending (create_time)
    WHERE delivery_job_id IS NOT NULL;

-- +goose Down
DROP TABLE tasks_webhook_pending;
