package licensing

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain errors. Wrapped with detail by the code that detects them.
var (
	// ErrMalformed: the license file is not in the signed-license format (truncated,
	// edited outside the signed part, not a license at all).
	ErrMalformed = errors.New("malformed license file")
	// ErrBadSignature: the signature does not verify with the trusted public key: the
	// file was changed after signing, or signed with another key.
	ErrBadSignature = errors.New("license signature is not valid")
	// ErrExpired: the license's expiry date has passed.
	ErrExpired = errors.New("license expired")
	// ErrInvalidArgument: a request or a license spec is invalid.
	ErrInvalidArgument = errors.New("invalid argument")
)

// toStatus maps a domain error to the gRPC status the service answers with.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrBadSignature), errors.Is(err, ErrExpired):
		// A license file the deployment cannot use: the operator must fix the file.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return err // the platform's interceptor turns it into Internal and logs it
	}
}
