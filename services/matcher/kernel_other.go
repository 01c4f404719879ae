//go:build !amd64

package matcher

// setKernel switches between implementations; only the portable one exists here.
func setKernel(string) (restore func()) { return func() {} }
