package backend

import "embed"

// migrationFiles are the backend's goose migrations (version table goose_backend),
// contributed to the platform's migration group by Module.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationFiles returns the migrations and their folder, for `vigil migrate` and tests.
func MigrationFiles() (embed.FS, string) { return migrationFiles, "migrations" }
