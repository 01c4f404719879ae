-- +goose Up
CREATE TABLE migrate_probe (id int PRIMARY KEY);
-- +goose Down
DROP TABLE migrate_probe;
