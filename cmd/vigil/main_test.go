package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
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

// --kafka, --s3 and --redis name the external engines, through the config's own parsing
// and validation.
func TestEngineFlags(t *testing.T) {
	for _, env := range []string{"VIGIL_KAFKA_BROKERS", "VIGIL_S3_ENDPOINT", "VIGIL_REDIS_ADDR", "VIGIL_S3_ACCESS_KEY", "VIGIL_S3_SECRET_KEY"} {
		t.Setenv(env, "") // restored after the test; loadConfig sets them
	}
	cfg, err := loadConfig(globalFlags{kafka: "k1:9092,k2:9092", redis: "r:6379"})
	require.NoError(t, err)
	require.Equal(t, []string{"k1:9092", "k2:9092"}, cfg.Kafka.Brokers)
	require.Equal(t, "r:6379", cfg.Redis.Addr)
	require.Empty(t, cfg.S3.Endpoint, "no --s3: the embedded store")

	_, err = loadConfig(globalFlags{s3: "s3.example:9000"})
	require.ErrorContains(t, err, "access_key", "an external S3 needs its keys")
	t.Setenv("VIGIL_S3_ACCESS_KEY", "ak")
	t.Setenv("VIGIL_S3_SECRET_KEY", "sk")
	cfg, err = loadConfig(globalFlags{s3: "s3.example:9000"})
	require.NoError(t, err)
	require.Equal(t, "s3.example:9000", cfg.S3.Endpoint)
}
