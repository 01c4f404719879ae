package imageapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/vision"
)

// errInvalidArgument marks request errors found by the server's own checks.
var errInvalidArgument = errors.New("invalid argument")

// fieldError names the request field an error is about ("samples[1].image").
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func atField(field string, err error) error {
	if err == nil {
		return nil
	}
	return &fieldError{field: field, err: err}
}

func invalid(field, format string, args ...any) error {
	return atField(field, fmt.Errorf("%w: "+format, append([]any{errInvalidArgument}, args...)...))
}

// toStatus maps a domain error to its gRPC status; it is the only place that
// does. Bad images and bad requests are INVALID_ARGUMENT naming the field
// (also as an errdetails.BadRequest field violation); errors that already
// carry a status (a license denial) keep it; anything else is left to the
// platform's interceptor, which reports INTERNAL and logs it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var fe *fieldError
	field := ""
	if errors.As(err, &fe) {
		field = fe.field
	}
	switch {
	case errors.Is(err, imgproc.ErrInvalidImage), errors.Is(err, vision.ErrInvalidRequest), errors.Is(err, errInvalidArgument):
		st := status.New(codes.InvalidArgument, err.Error())
		if field != "" {
			if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: field, Description: err.Error()},
			}}); derr == nil {
				st = d
			}
		}
		return st.Err()
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
