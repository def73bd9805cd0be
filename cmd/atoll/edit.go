package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/edit"
)

// editHub is edit.Hub for one object.
type editHub struct {
	c    *client.Client
	kind api.Kind
	name string
}

func (h editHub) Get(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := h.c.Get(ctx, h.kind.Plural, h.name, &raw)
	return raw, err
}

func (h editHub) Patch(ctx context.Context, patch json.RawMessage) (json.RawMessage, error) {
	var out json.RawMessage
	err := h.c.PatchAs(ctx, h.kind.Plural, h.name, client.MergePatch, patch, &out)
	return out, err
}

// editorCommand is the user's editor: $EDITOR, else $VISUAL, else vi.
func editorCommand() string {
	for _, v := range []string{"EDITOR", "VISUAL"} {
		if e := os.Getenv(v); e != "" {
			return e
		}
	}
	return "vi"
}

func newEditCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "edit KIND NAME",
		Short: "Edit an object in $EDITOR (or $VISUAL, or vi) and save it to the hub",
		Long: "Opens the object as YAML in $EDITOR (else $VISUAL, else vi). Saving sends the changes as a merge patch with the version they were made on: " +
			"when the object changed meanwhile, or the hub refuses the edit, the editor opens again with the error as a comment. " +
			"Saving it unchanged cancels.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, c, err := cf.kindClient(args[0])
			if err != nil {
				return err
			}
			name := ref(k, args[1])
			editor := editorCommand()
			open := func(path string) error {
				// The editor may be a command line ("code --wait"): the
				// shell splits it, and the file is passed as one argument.
				e := exec.CommandContext(cmd.Context(), "/bin/sh", "-c", editor+` "$1"`, "atoll-edit", path)
				e.Stdin, e.Stdout, e.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
				return e.Run()
			}
			_, err = edit.Loop(cmd.Context(), editHub{c: c, kind: k, name: args[1]}, "", name, open)
			if errors.Is(err, edit.ErrCancelled) {
				fmt.Fprintln(cmd.OutOrStdout(), "Edit cancelled, no changes made.")
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s edited\n", name)
			return nil
		},
	}
}
