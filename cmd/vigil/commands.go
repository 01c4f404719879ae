package main

import (
	"context"
	"fmt"
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
