package licensing

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	"github.com/vigilhq/vigil/platform/log"
)

// Enforcer holds the license in force, records the usage reported against it (in the
// Store), and answers checks. It is the domain core of the service: no gRPC in here.
type Enforcer struct {
	cfg   Config
	pub   ed25519.PublicKey
	log   *slog.Logger
	now   func() time.Time
	store *Store

	mu sync.RWMutex
	// lic is the license in force (FreeTier() when no file is configured).
	lic      *License
	source   licensingv1.Source
	loadTime time.Time
	// fileHash is the hash of the file content last tried (loaded or refused), so the
	// watcher reacts to a change once, not every interval.
	fileHash      [sha256.Size]byte
	lastReloadErr string
}

// Verdict is the answer to a check.
type Verdict struct {
	Allowed bool
	Denial  licensingv1.Denial
	// Message names the limit, unit or feature and says why.
	Message string
	// For counted resources.
	LimitName string
	Limit     int64
	Used      int64
}

// LimitUsage is the usage of one counted limit.
type LimitUsage struct {
	Resource  licensingv1.Resource
	LimitName string
	Limit     int64
	Used      int64
	// ReportTime is the latest report's time; zero when nothing was reported.
	ReportTime time.Time
}

// Snapshot is the license in force and its state.
type Snapshot struct {
	License         *License
	Source          licensingv1.Source
	State           licensingv1.State
	LoadTime        time.Time
	LastReloadError string
}

// NewEnforcer loads the configured license: the free tier when none is configured, an
// error (the process refuses to start) when the file cannot be read, does not verify or
// has expired. Usage is kept in store (not touched before the app starts, when its
// migrations have run). now nil means time.Now.
func NewEnforcer(cfg Config, logger *slog.Logger, now func() time.Time, store *Store) (*Enforcer, error) {
	if now == nil {
		now = time.Now
	}
	pub, err := LoadPublicKey(cfg.PublicKeyFile)
	if err != nil {
		return nil, err
	}
	e := &Enforcer{cfg: cfg, pub: pub, log: logger, now: now, store: store}
	if cfg.LicenseFile == "" {
		e.lic, e.source, e.loadTime = FreeTier(), licensingv1.Source_SOURCE_FREE_TIER, now()
		logger.Info("no license file configured: free tier", "max_persons", FreeTierMaxPersons,
			"max_agents", FreeTierMaxAgents, "max_cameras", FreeTierMaxCameras)
		return e, nil
	}
	l, hash, err := e.readFile()
	if err != nil {
		return nil, fmt.Errorf("license %s refused: %w", cfg.LicenseFile, err)
	}
	e.lic, e.source, e.loadTime, e.fileHash = l, licensingv1.Source_SOURCE_FILE, now(), hash
	e.logLoaded("license loaded", l)
	return e, nil
}

// readFile reads and verifies the configured license file.
func (e *Enforcer) readFile() (*License, [sha256.Size]byte, error) {
	data, err := os.ReadFile(e.cfg.LicenseFile)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("read: %w", err)
	}
	hash := sha256.Sum256(data)
	l, err := Verify(data, e.pub, e.now())
	if err != nil {
		return nil, hash, err
	}
	return l, hash, nil
}

func (e *Enforcer) logLoaded(msg string, l *License) {
	attrs := []any{"license_id", l.LicenseID, "licensee", l.Licensee, "key_id", l.KeyID,
		"max_persons", l.Limits.MaxPersons, "max_agents", l.Limits.MaxAgents, "max_cameras", l.Limits.MaxCameras,
		"image_api_units", l.ImageAPIUnits, "features", l.Features}
	if l.Expires != nil {
		attrs = append(attrs, "expires", l.Expires.Format(time.RFC3339))
	}
	e.log.Info(msg, attrs...)
}

// Reload reads the license file again. On any problem the license in force stays, the
// problem is remembered (Snapshot.LastReloadError) and returned.
func (e *Enforcer) Reload() (*License, error) {
	if e.cfg.LicenseFile == "" {
		e.mu.RLock()
		defer e.mu.RUnlock()
		return e.lic, nil
	}
	l, hash, err := e.readFile()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fileHash = hash
	if err != nil {
		e.lastReloadErr = err.Error()
		e.log.Error("license reload refused; the license in force stays", "license_id", e.lic.LicenseID, log.Err(err))
		return nil, fmt.Errorf("license %s refused: %w", e.cfg.LicenseFile, err)
	}
	e.lic, e.source, e.loadTime, e.lastReloadErr = l, licensingv1.Source_SOURCE_FILE, e.now(), ""
	e.logLoaded("license reloaded", l)
	return l, nil
}

// reloadIfChanged reloads when the file's content differs from the last content tried.
// It reports whether it tried (successfully or not).
func (e *Enforcer) reloadIfChanged() bool {
	if e.cfg.LicenseFile == "" {
		return false
	}
	data, err := os.ReadFile(e.cfg.LicenseFile)
	if err != nil {
		// A file being replaced may be missing for a moment; a real removal is reported
		// by the next Reload or restart, and the license in force stays meanwhile.
		return false
	}
	e.mu.RLock()
	same := sha256.Sum256(data) == e.fileHash
	e.mu.RUnlock()
	if same {
		return false
	}
	_, _ = e.Reload() // logged and remembered inside
	return true
}

// Snapshot returns the license in force and its state at this moment.
func (e *Enforcer) Snapshot() Snapshot {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := Snapshot{License: e.lic, Source: e.source, State: licensingv1.State_STATE_VALID,
		LoadTime: e.loadTime, LastReloadError: e.lastReloadErr}
	if e.lic.ExpiredAt(e.now()) {
		s.State = licensingv1.State_STATE_EXPIRED
	}
	return s
}

// effective is the license whose limits apply now, and a note for denial messages.
// Callers hold e.mu.
func (e *Enforcer) effective() (*License, string) {
	switch {
	case e.lic.ExpiredAt(e.now()):
		return FreeTier(), fmt.Sprintf(" (license %s expired on %s; the free tier applies)",
			e.lic.LicenseID, e.lic.Expires.Format(time.RFC3339))
	case e.source == licensingv1.Source_SOURCE_FREE_TIER:
		return e.lic, " (free tier; install a license to raise it)"
	default:
		return e.lic, ""
	}
}

// CheckResource answers whether `requested` more of r fit the license.
func (e *Enforcer) CheckResource(ctx context.Context, r licensingv1.Resource, requested int64) (Verdict, error) {
	if requested < 0 {
		return Verdict{}, fmt.Errorf("%w: requested: %d is negative", ErrInvalidArgument, requested)
	}
	if requested == 0 {
		requested = 1
	}
	e.mu.RLock()
	lic, note := e.effective()
	e.mu.RUnlock()
	name, limit, err := lic.Limit(r)
	if err != nil {
		return Verdict{}, err
	}
	used, _, err := e.store.Used(ctx, r)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Allowed: true, LimitName: name, Limit: limit, Used: used}
	if limit > 0 && used+requested > limit {
		v.Allowed = false
		v.Denial = licensingv1.Denial_DENIAL_LIMIT_REACHED
		v.Message = fmt.Sprintf("license limit %s reached: %d of %d used, %d requested%s", name, used, limit, requested, note)
	}
	return v, nil
}

// CheckUnit answers whether the Image API unit is enabled.
func (e *Enforcer) CheckUnit(unit string) (Verdict, error) {
	if unit == "" {
		return Verdict{}, fmt.Errorf("%w: unit: required", ErrInvalidArgument)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	lic, note := e.effective()
	if lic.UnitEnabled(unit) {
		return Verdict{Allowed: true}, nil
	}
	return Verdict{Denial: licensingv1.Denial_DENIAL_UNIT_NOT_ENABLED,
		Message: fmt.Sprintf("Image API unit %q is not enabled by the license%s", unit, note)}, nil
}

// CheckFeature answers whether the feature is enabled.
func (e *Enforcer) CheckFeature(feature string) (Verdict, error) {
	if feature == "" {
		return Verdict{}, fmt.Errorf("%w: feature: required", ErrInvalidArgument)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	lic, note := e.effective()
	if lic.FeatureEnabled(feature) {
		return Verdict{Allowed: true}, nil
	}
	return Verdict{Denial: licensingv1.Denial_DENIAL_FEATURE_NOT_ENABLED,
		Message: fmt.Sprintf("feature %q is not enabled by the license%s", feature, note)}, nil
}

// UsageReport is one absolute count of a resource in a workspace.
type UsageReport struct {
	WorkspaceID string
	Resource    licensingv1.Resource
	Count       int64
}

// ReportUsage records absolute counts; each replaces the previous one of its workspace
// and resource. All reports are checked before any is stored, and stored together.
func (e *Enforcer) ReportUsage(ctx context.Context, reports []UsageReport) error {
	if len(reports) == 0 {
		return fmt.Errorf("%w: reports: at least one is required", ErrInvalidArgument)
	}
	for i, r := range reports {
		if r.WorkspaceID == "" {
			return fmt.Errorf("%w: reports[%d].workspace_id: required", ErrInvalidArgument, i)
		}
		if _, err := resourceColumn(r.Resource); err != nil {
			return fmt.Errorf("%w: reports[%d].resource: %v is not a counted resource", ErrInvalidArgument, i, r.Resource)
		}
		if r.Count < 0 {
			return fmt.Errorf("%w: reports[%d].count: %d is negative", ErrInvalidArgument, i, r.Count)
		}
	}
	return e.store.Put(ctx, reports, e.now())
}

// Usage returns the usage of every counted limit of the license whose limits apply now.
func (e *Enforcer) Usage(ctx context.Context) ([]LimitUsage, error) {
	e.mu.RLock()
	lic, _ := e.effective()
	e.mu.RUnlock()
	out := make([]LimitUsage, 0, len(Resources))
	for _, r := range Resources {
		name, limit, _ := lic.Limit(r)
		used, at, err := e.store.Used(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, LimitUsage{Resource: r, LimitName: name, Limit: limit, Used: used, ReportTime: at})
	}
	return out, nil
}
