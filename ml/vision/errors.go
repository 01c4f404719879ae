package vision

import "errors"

// ErrInvalidRequest is wrapped by every error caused by the caller's input
// (besides the image itself, which wraps imgproc.ErrInvalidImage).
var ErrInvalidRequest = errors.New("invalid request")

// ErrIncomparable says two templates come from different models or versions.
var ErrIncomparable = errors.New("templates from different models cannot be compared")
