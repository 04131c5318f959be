package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/plazahq/plaza/transport/socketio"
)

const appsUsage = `usage:
  socketio apps create [-data DIR] [-name NAME] [-publish-per-minute N]
  socketio apps list   [-data DIR]
  socketio apps rotate [-data DIR] -key publish|subscribe APP_ID
  socketio apps delete [-data DIR] APP_ID`

// apps runs the apps subcommands on the registry in the -data folder.
func apps(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(appsUsage)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("apps "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	data := fs.String("data", defaultData, "folder of apps.db")
	var name, key string
	var perMinute int
	switch cmd {
	case "create":
		fs.StringVar(&name, "name", "", "a name for the app")
		fs.IntVar(&perMinute, "publish-per-minute", 0, "the app's cap on POST /publish per rolling minute (0: the server's; negative: none)")
	case "rotate":
		fs.StringVar(&key, "key", "", `the key to replace: "publish" or "subscribe"`)
	case "list", "delete":
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, appsUsage)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	id := fs.Arg(0)
	if (cmd == "rotate" || cmd == "delete") && (id == "" || fs.NArg() > 1) {
		return fmt.Errorf("apps %s takes one App ID\n%s", cmd, appsUsage)
	}

	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	reg, err := socketio.OpenRegistry(filepath.Join(*data, "apps.db"), socketio.RegistryOptions{OpenTimeout: 200 * time.Millisecond})
	if errors.Is(err, socketio.ErrInUse) {
		return fmt.Errorf("%s is in use by a running server: stop it, or use its admin API, for example\n"+
			`  curl -X POST "http://127.0.0.1:8080/admin/apps" -H "Authorization: Bearer $(cat %s)" -d '{"name": "My shop"}'`,
			filepath.Join(*data, "apps.db"), filepath.Join(*data, "admin.key"))
	}
	if err != nil {
		return err
	}
	defer reg.Close()
	ctx := context.Background()

	switch cmd {
	case "create":
		app, creds, err := reg.Create(ctx, socketio.AppOptions{Name: name, PublishPerMinute: perMinute})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Created app %q. Keep the keys now: they are stored hashed and never shown again.\n\n", app.Name)
		printCredentials(out, creds)
	case "list":
		list, err := reg.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APP ID\tNAME\tPUBLISH KEY\tSUBSCRIBE KEY\tCREATED")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.PublishKeyHint, a.SubscribeKeyHint, a.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "rotate":
		creds, err := reg.Rotate(ctx, id, socketio.KeyKind(key))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "New %s key of %s; the old one is refused from now on.\n\n", key, id)
		printCredentials(out, creds)
	case "delete":
		if err := reg.Delete(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(out, "Deleted %s; its keys are refused from now on. Its history stays in history.db.\n", id)
	}
	return nil
}

func printCredentials(out io.Writer, c socketio.Credentials) {
	fmt.Fprintf(out, "App ID:         %s\n", c.AppID)
	if c.PublishKey != "" {
		fmt.Fprintf(out, "Publish key:    %s   (servers only: POST /publish)\n", c.PublishKey)
	}
	if c.SubscribeKey != "" {
		fmt.Fprintf(out, "Subscribe key:  %s   (clients: Socket.IO auth)\n", c.SubscribeKey)
	}
}
