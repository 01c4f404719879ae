-- +goose Up
ALTER TABLE people ADD COLUMN email text;
-- +goose Down
ALTER TABLE people DROP COLUMN email;
