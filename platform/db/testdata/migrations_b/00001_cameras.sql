-- +goose Up
CREATE TABLE cameras (id bigint PRIMARY KEY);
-- +goose Down
DROP TABLE cameras;
