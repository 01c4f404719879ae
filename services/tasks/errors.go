package tasks

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain errors.
var (
	// ErrInvalid wraps invalid input; the message names the field.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: no such job in the caller's workspace.
	ErrNotFound = errors.New("not found")
	// ErrWrongState: the job's status does not allow the operation.
	ErrWrongState = errors.New("wrong state")
	// ErrNoWorkspace: the caller acts in no workspace.
	ErrNoWorkspace = errors.New("no workspace in the request")
	// ErrUnavailable: the object store or a peer did not answer.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnsupported: the operation needs a part of Vigil this deployment lacks.
	ErrUnsupported = errors.New("unsupported")
)

// toStatus maps a domain error to its gRPC status; the one place that does.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	switch {
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrWrongState):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrNoWorkspace):
		code = codes.PermissionDenied
	case errors.Is(err, ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		// Left status-less: the platform's interceptor logs it and answers Internal.
		return err
	}
	return status.Error(code, err.Error())
}
