package matcher

import "errors"

// Domain errors; toStatus in errors.go maps them to gRPC codes.
var (
	// ErrInvalidTemplate: empty, NaN/Inf, zero or wrong-dimension vector.
	ErrInvalidTemplate = errors.New("invalid template")
	// ErrInvalidArgument: any other bad request field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrModelMismatch: the template was made by another model than the gallery's.
	ErrModelMismatch = errors.New("template model does not match the gallery")
	// ErrNotFound: the named template or person is not in the gallery.
	ErrNotFound = errors.New("not found")
	// ErrShardUnavailable: a shard that owns part of a write did not answer.
	ErrShardUnavailable = errors.New("shard unavailable")
)
