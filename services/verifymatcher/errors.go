package verifymatcher

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus maps a domain error to its gRPC status; it is the only place that does.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrInvalidTemplate), errors.Is(err, ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrModelMismatch), errors.Is(err, ErrNoFMRTable), errors.Is(err, ErrNoFace):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrImageAPI):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	return err
}
