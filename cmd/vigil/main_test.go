package main

import (
	"os"
	"testing"
)

// envRunMain makes the test binary behave as the vigil binary, so the end-to-end test
// runs the real command in a real process without a separate build.
const envRunMain = "VIGIL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
