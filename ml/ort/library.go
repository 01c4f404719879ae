package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvLibraryPath names the environment variable that overrides every other
// way of finding the ONNX Runtime shared library.
const EnvLibraryPath = "VIGIL_ORT_LIB"

// cacheLibrary is where deploy/onnxruntime.sh unpacks the library, relative to
// the repository root.
var cacheLibrary = filepath.Join(".cache", "onnxruntime", "libonnxruntime.so.1")

// ErrLibraryNotFound says that no ONNX Runtime shared library could be found.
var ErrLibraryNotFound = errors.New("onnxruntime shared library not found (run deploy/onnxruntime.sh or set " + EnvLibraryPath + ")")

// LibraryPath finds the ONNX Runtime shared library, in this order:
//  1. the environment variable VIGIL_ORT_LIB;
//  2. configured, the path from the service configuration, when not empty;
//  3. <repo root>/.cache/onnxruntime/libonnxruntime.so.1, where the repo root
//     is found by walking up from the working directory, then from the
//     executable's directory, to the first folder holding go.mod (this is how
//     tests, `go run` and a binary built in the checkout find it).
//
// An explicit configuration value is preferred to the discovered cache so that
// a deployment that names a library never silently loads another one.
func LibraryPath(configured string) (string, error) {
	if p := os.Getenv(EnvLibraryPath); p != "" {
		return existing(p, EnvLibraryPath)
	}
	if configured != "" {
		return existing(configured, "configured library path")
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		root, ok := RepoRoot(start)
		if !ok {
			continue
		}
		p := filepath.Join(root, cacheLibrary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrLibraryNotFound
}

// RepoRoot walks up from dir to the first folder that holds a go.mod file.
func RepoRoot(dir string) (string, bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func existing(p, source string) (string, error) {
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %q: %w", source, p, err)
	}
	return p, nil
}
