package tasks

import "embed"

// migrationFiles are the task queue's own goose migrations (version table goose_tasks),
// contributed to the platform's migration group by Module. River's tables are migrated
// separately by jobs.Migrate.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationFiles returns the migrations and their folder, for tests.
func MigrationFiles() (embed.FS, string) { return migrationFiles, "migrations" }
