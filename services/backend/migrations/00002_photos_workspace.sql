-- +goose Up
-- Re-extraction pages through a workspace's photos by id and counts them on every page;
-- without this index both scan every workspace's photos.
CREATE INDEX photos_workspace ON photos (workspace_id, id);

-- +goose Down
DROP INDEX photos_workspace;
