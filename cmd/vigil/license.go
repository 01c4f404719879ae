package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigilhq/vigil/services/licensing"
)

// licenseCommand is `vigil license keygen|sign|inspect`: the issuer's tools, delegating to
// the licensing package. Paths are positional, keeping flags to --config and --log-level.
func licenseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "license",
		Short: "Create signing keys, sign and inspect license files",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "keygen <private-key.pem> <public-key.pem>",
			Short: "Create an ed25519 signing key pair (never overwrites a file)",
			Args:  cobra.ExactArgs(2),
			RunE: func(c *cobra.Command, args []string) error {
				id, err := licensing.Keygen(args[0], args[1])
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "key %s\nprivate key: %s (keep it secret)\npublic key:  %s\n", id, args[0], args[1])
				return nil
			},
		},
		&cobra.Command{
			Use:   "sign <private-key.pem> <spec.yaml> <license-file>",
			Short: "Sign a license spec into a license file (never overwrites a file)",
			Args:  cobra.ExactArgs(3),
			RunE: func(c *cobra.Command, args []string) error {
				l, err := licensing.Sign(args[0], args[1], args[2])
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "license %s for %s signed by key %s: %s\n", l.LicenseID, l.Licensee, l.KeyID, args[2])
				return nil
			},
		},
		&cobra.Command{
			Use:   "inspect <license-file> [public-key.pem]",
			Short: "Verify a license file and print it (the built-in public key when none is given)",
			Args:  cobra.RangeArgs(1, 2),
			RunE: func(c *cobra.Command, args []string) error {
				pub := ""
				if len(args) == 2 {
					pub = args[1]
				}
				_, err := licensing.Inspect(c.OutOrStdout(), args[0], pub)
				return err
			},
		},
	)
	return cmd
}
