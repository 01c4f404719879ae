package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigilhq/vigil/platform/config"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

type globalFlags struct {
	configPath string
	logLevel   string
	// The external engines, as shortcuts for their config keys: without them `vigil all`
	// embeds an in-process Kafka broker, an S3 store on local disk and in-process pub/sub.
	kafka, s3, redis string
}

func newRootCommand() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "vigil",
		Short:         "Vigil: self-hosted face recognition and video analytics",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "YAML config file (env VIGIL_CONFIG); VIGIL_* variables override it")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (overrides log_level)")
	root.PersistentFlags().StringVar(&g.kafka, "kafka", "", "Kafka brokers, host:port,... (kafka.brokers; default: an in-process broker)")
	root.PersistentFlags().StringVar(&g.s3, "s3", "", "S3 endpoint host:port (s3.endpoint; keys from VIGIL_S3_ACCESS_KEY/VIGIL_S3_SECRET_KEY; default: an embedded store on disk)")
	root.PersistentFlags().StringVar(&g.redis, "redis", "", "Redis host:port (redis.addr; default: in-process pub/sub and cache)")

	var except []string
	all := &cobra.Command{
		Use:   "all",
		Short: "Run every component in one process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := allExcept(except)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			return runUntilSignal(cmd.Context(), cfg, names, modeAll)
		},
	}
	all.Flags().StringSliceVar(&except, "except", nil, "components to leave out (comma-separated)")

	serve := &cobra.Command{
		Use:   "serve <component>...",
		Short: "Run the named components in one process",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := knownComponents(args); err != nil {
				return err
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			return runUntilSignal(cmd.Context(), cfg, args, modeServe)
		},
	}

	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Apply every component's database migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			return runMigrate(cmd.Context(), cfg)
		},
	}

	versionCmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "vigil", version)
		},
	}

	root.AddCommand(all, serve, migrate, versionCmd)
	root.AddCommand(extraCommands(&g)...)
	return root
}

func loadConfig(g globalFlags) (*config.Config, error) {
	path := g.configPath
	if path == "" {
		path = envOr("VIGIL_CONFIG", "")
	}
	// The engine flags win over the file and the environment; they go through the
	// environment so the config's own parsing and validation apply to them.
	for env, v := range map[string]string{"VIGIL_KAFKA_BROKERS": g.kafka, "VIGIL_S3_ENDPOINT": g.s3, "VIGIL_REDIS_ADDR": g.redis} {
		if v != "" {
			if err := os.Setenv(env, v); err != nil {
				return nil, err
			}
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if g.logLevel != "" {
		if _, err := config.ParseLevel(g.logLevel); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
		cfg.LogLevel = g.logLevel
	}
	return cfg, nil
}

func allExcept(except []string) ([]string, error) {
	if err := knownComponents(except); err != nil {
		return nil, fmt.Errorf("--except: %w", err)
	}
	var names []string
	for _, n := range componentOrder {
		if _, ok := components[n]; ok && !slices.Contains(except, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

func knownComponents(names []string) error {
	for _, n := range names {
		if _, ok := components[n]; !ok {
			known := make([]string, 0, len(components))
			for k := range components {
				known = append(known, k)
			}
			sort.Strings(known)
			return fmt.Errorf("unknown component %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	return nil
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}
