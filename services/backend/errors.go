package backend

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain errors. Code wraps them with context (fmt.Errorf("person %s: %w", id, ErrNotFound));
// toStatus maps them to gRPC codes in one place.
var (
	ErrInvalid         = errors.New("invalid argument")
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrFailedCondition = errors.New("failed precondition")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrPermission      = errors.New("permission denied")
	ErrLimit           = errors.New("license limit reached")
	ErrUnavailable     = errors.New("unavailable")
)

// invalid returns an ErrInvalid naming the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalid)
}

// toStatus maps a domain error to a gRPC status error. Statuses coming from peers (the
// Image API, the matcher, licensing) keep their code. Anything else is returned as is:
// the platform's interceptor turns it into Internal with a generic message and logs it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var code codes.Code
	switch {
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, ErrFailedCondition):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, ErrLimit):
		code = codes.ResourceExhausted
	case errors.Is(err, ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		if s, ok := status.FromError(err); ok {
			return s.Err()
		}
		var se interface{ GRPCStatus() *status.Status }
		if errors.As(err, &se) {
			return status.Error(se.GRPCStatus().Code(), err.Error())
		}
		return err
	}
	return status.Error(code, err.Error())
}
