package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/explain"
)

// openAPI reads and parses the hub's /openapi.json (served without a
// token).
func openAPI(cmd *cobra.Command, c *client.Client) (*explain.Document, error) {
	var raw json.RawMessage
	if err := c.Raw(cmd.Context(), http.MethodGet, "/openapi.json", nil, nil, &raw); err != nil {
		return nil, err
	}
	return explain.Parse(raw)
}

func newExplainCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "explain KIND[.field.path]",
		Short:   "Describe a kind or one of its fields, from the hub's OpenAPI document",
		Example: "  atoll explain workload\n  atoll explain workload.spec.template.readinessProbe",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			parts := strings.Split(args[0], ".")
			k, c, err := cf.kindClient(parts[0])
			if err != nil {
				return err
			}
			doc, err := openAPI(cmd, c)
			if err != nil {
				return err
			}
			text, err := doc.Explain(k.Name, api.Group, parts[1:])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), text)
			return nil
		},
	}
}

func newVersionCmd(cf *clientFlags) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's version and the hub's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "Client Version: %s\n", version)
			if clientOnly {
				return nil
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			doc, err := openAPI(cmd, c)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Server Version: %s\n", doc.Info.Version)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the client's version (no hub needed)")
	return cmd
}

func newAPIResourcesCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "api-resources",
		Short: "List the kinds the hub serves, with short names and verbs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			doc, err := openAPI(cmd, c)
			if err != nil {
				return err
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS")
			for _, k := range api.Kinds {
				var short []string
				for _, s := range k.Short {
					if s != strings.ToLower(k.Name) {
						short = append(short, s)
					}
				}
				t.row(k.Plural, strings.Join(short, ","), api.Group, "false", k.Name, strings.Join(doc.Verbs(k.Plural), ","))
			}
			return t.flush()
		},
	}
}
