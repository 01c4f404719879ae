-- +goose Up
CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL);
-- +goose Down
DROP TABLE people;
