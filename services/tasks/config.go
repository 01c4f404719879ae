package tasks

import (
	"errors"
	"time"
)

// Config is the "tasks" section of the configuration file.
type Config struct {
	// Workers is how many jobs of the default queue (imports, re-extractions, purges) run
	// at once in this process.
	Workers int `yaml:"workers"`
	// WebhookWorkers is how many webhook deliveries run at once in this process.
	WebhookWorkers int `yaml:"webhook_workers"`
	// RetryBase is the back-off before the second attempt; each further attempt waits
	// twice as long (with ±10% jitter), up to RetryMax.
	RetryBase time.Duration `yaml:"retry_base"`
	RetryMax  time.Duration `yaml:"retry_max"`
	// WebhookTimeout bounds one delivery attempt (connect, send, response headers).
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// WebhookBatchLinger is how long a webhook with batch_size > 1 gathers events before
	// a POST that is not full.
	WebhookBatchLinger time.Duration `yaml:"webhook_batch_linger"`
	// ImportParallelism is how many persons one import job creates at once.
	ImportParallelism int `yaml:"import_parallelism"`
	// MaxImportBytes bounds an import upload (the zip or CSV).
	MaxImportBytes int64 `yaml:"max_import_bytes"`
	// ReextractPageSize is how many photos a re-extraction job has the backend re-extract
	// per call; the job checkpoints after each page.
	ReextractPageSize int `yaml:"reextract_page_size"`
	// KeepFinished is how long succeeded and cancelled jobs stay listable.
	KeepFinished time.Duration `yaml:"keep_finished"`
	// KeepDead is how long dead jobs stay listable (and retryable).
	KeepDead time.Duration `yaml:"keep_dead"`
	// RetentionSweepInterval is how often a retention purge is queued for every workspace
	// with a retention period.
	RetentionSweepInterval time.Duration `yaml:"retention_sweep_interval"`
	// PollInterval is how often workers look for jobs when no notification arrives
	// (inserts notify through LISTEN/NOTIFY, so this is only a fallback).
	PollInterval time.Duration `yaml:"poll_interval"`
}

// SetDefaults fills every setting.
func (c *Config) SetDefaults() {
	c.Workers = 4
	c.WebhookWorkers = 16
	c.RetryBase = time.Second
	c.RetryMax = time.Hour
	c.WebhookTimeout = 10 * time.Second
	c.WebhookBatchLinger = time.Second
	c.ImportParallelism = 4
	c.MaxImportBytes = 1 << 30
	c.ReextractPageSize = 50
	c.KeepFinished = 7 * 24 * time.Hour
	c.KeepDead = 30 * 24 * time.Hour
	c.RetentionSweepInterval = time.Hour
	c.PollInterval = time.Second
}

// Validate reports unusable settings.
func (c *Config) Validate() error {
	var errs []error
	if c.Workers < 1 {
		errs = append(errs, errors.New("workers: at least 1"))
	}
	if c.WebhookWorkers < 1 {
		errs = append(errs, errors.New("webhook_workers: at least 1"))
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		errs = append(errs, errors.New("retry_base, retry_max: need 0 < retry_base <= retry_max"))
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("webhook_timeout: must be positive"))
	}
	if c.WebhookBatchLinger < 0 {
		errs = append(errs, errors.New("webhook_batch_linger: must not be negative"))
	}
	if c.ImportParallelism < 1 {
		errs = append(errs, errors.New("import_parallelism: at least 1"))
	}
	if c.MaxImportBytes < 1 {
		errs = append(errs, errors.New("max_import_bytes: must be positive"))
	}
	if c.ReextractPageSize < 1 || c.ReextractPageSize > 500 {
		errs = append(errs, errors.New("reextract_page_size: 1..500"))
	}
	if c.KeepFinished <= 0 || c.KeepDead <= 0 {
		errs = append(errs, errors.New("keep_finished, keep_dead: must be positive"))
	}
	if c.RetentionSweepInterval < time.Minute {
		errs = append(errs, errors.New("retention_sweep_interval: at least 1m"))
	}
	if c.PollInterval < time.Millisecond {
		errs = append(errs, errors.New("poll_interval: at least 1ms"))
	}
	return errors.Join(errs...)
}
