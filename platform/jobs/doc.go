// Package jobs is the shared vocabulary of Vigil's task queue: the kinds of job and their
// arguments, the queues they run on, and InsertTx, with which any component enqueues a
// job inside its own pgx transaction (so the job exists exactly when the data change that
// needs it commits). The queue is River (github.com/riverqueue/river) on the shared
// PostgreSQL; the tasks service (services/tasks) runs the workers. Components enqueue
// through this package and never import services/tasks.
package jobs
