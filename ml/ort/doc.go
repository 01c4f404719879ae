// Package ort owns the process-wide ONNX Runtime environment and pools of
// inference sessions built on github.com/yalue/onnxruntime_go.
//
// The runtime library is not part of the repository: deploy/onnxruntime.sh
// fetches it from the npm package onnxruntime-node (see LibraryPath for how it
// is found). The CUDA execution provider is used when the loaded library and
// the machine support it; otherwise sessions run on the CPU, and the choice is
// logged once with the reason.
package ort
