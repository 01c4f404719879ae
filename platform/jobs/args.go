package jobs

import (
	"github.com/riverqueue/river"
)

// Queues. Webhook deliveries have their own queue so that a long import never delays
// notifications, and imports cannot be starved by a burst of deliveries.
const (
	QueueDefault  = river.QueueDefault
	QueueWebhooks = "webhooks"
)

// Kinds of job. They are stored in river_job.kind: never rename one.
const (
	KindBulkImport      = "vigil.bulk_import"
	KindReextract       = "vigil.reextract"
	KindRetentionPurge  = "vigil.retention_purge"
	KindWebhookDelivery = "vigil.webhook_delivery"
)

// Default attempts before a job is dead (River's "discarded").
const (
	MaxAttemptsDefault = 5
	// Webhook deliveries retry longer: with exponential back-off from 1 s capped at 1 h,
	// 12 attempts span about 5 hours of receiver downtime.
	MaxAttemptsWebhook = 12
)

// Args is what every Vigil job carries: the workspace it acts in. The tasks service shows
// a workspace only its own jobs.
type Args interface {
	river.JobArgs
	Workspace() string
}

// Import formats of BulkImportArgs.
const (
	ImportFormatZIP = "zip"
	ImportFormatCSV = "csv"
)

// BulkImportArgs imports persons from a zip of photos or a CSV of
// `external_id,name,url` rows, stored in the object store at ObjectKey.
type BulkImportArgs struct {
	WorkspaceID string `json:"workspace_id"`
	// Format is ImportFormatZIP or ImportFormatCSV.
	Format string `json:"format"`
	// ObjectKey is the upload's key in Vigil's bucket.
	ObjectKey string `json:"object_key"`
	// FileName is the upload's original name, for the job's description.
	FileName string `json:"file_name,omitempty"`
	// GroupIDs are the groups every imported person joins.
	GroupIDs []string `json:"group_ids,omitempty"`
}

func (BulkImportArgs) Kind() string        { return KindBulkImport }
func (a BulkImportArgs) Workspace() string { return a.WorkspaceID }
func (BulkImportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: MaxAttemptsDefault}
}

// ReextractArgs re-extracts every template of a workspace with the current model, after
// a model change.
type ReextractArgs struct {
	WorkspaceID string `json:"workspace_id"`
}

func (ReextractArgs) Kind() string        { return KindReextract }
func (a ReextractArgs) Workspace() string { return a.WorkspaceID }
func (ReextractArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: MaxAttemptsDefault}
}

// RetentionPurgeArgs deletes a workspace's events and event images older than its
// retention setting.
type RetentionPurgeArgs struct {
	WorkspaceID string `json:"workspace_id"`
}

func (RetentionPurgeArgs) Kind() string        { return KindRetentionPurge }
func (a RetentionPurgeArgs) Workspace() string { return a.WorkspaceID }
func (RetentionPurgeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: MaxAttemptsDefault}
}

// WebhookDeliveryArgs POSTs Body to URL, signed with Secret (see Sign). The enqueuer
// freezes URL, Secret and Body at enqueue time, so every retry sends the same bytes;
// batching is the enqueuer's choice (Body may hold several events). A delivery is unique
// by (WorkspaceID, WebhookID, EventIDs) while queued, running or succeeded: enqueuing
// the same events for the same webhook again (a redelivered notification) is a no-op.
type WebhookDeliveryArgs struct {
	WorkspaceID string `json:"workspace_id" river:"unique"`
	WebhookID   string `json:"webhook_id" river:"unique"`
	URL         string `json:"url"`
	// Secret is the webhook's HMAC key.
	Secret string `json:"secret"`
	// EventIDs are the events in Body, for the delivery log and uniqueness.
	EventIDs []string `json:"event_ids,omitempty" river:"unique"`
	// Body is the JSON sent as the request body, byte for byte. It is a []byte (base64 in
	// the job row) rather than a json.RawMessage because River stores args as jsonb, which
	// would reformat the JSON.
	Body []byte `json:"body"`
}

func (WebhookDeliveryArgs) Kind() string        { return KindWebhookDelivery }
func (a WebhookDeliveryArgs) Workspace() string { return a.WorkspaceID }
func (WebhookDeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue: QueueWebhooks, MaxAttempts: MaxAttemptsWebhook,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// Compile-time checks that every kind carries its workspace and its default options.
var (
	_ Args                        = BulkImportArgs{}
	_ Args                        = ReextractArgs{}
	_ Args                        = RetentionPurgeArgs{}
	_ Args                        = WebhookDeliveryArgs{}
	_ river.JobArgsWithInsertOpts = BulkImportArgs{}
	_ river.JobArgsWithInsertOpts = ReextractArgs{}
	_ river.JobArgsWithInsertOpts = RetentionPurgeArgs{}
	_ river.JobArgsWithInsertOpts = WebhookDeliveryArgs{}
)
