package web

import (
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// dataRow is one Config or Secret as the console shows it: its keys,
// their sizes and its version, never a value.
type dataRow struct {
	Kind    string
	Name    string
	Keys    []api.DataKey
	Version int64
	Created *time.Time
	Labels  map[string]string
}

// dataData is the page of configs and secrets.
type dataData struct {
	Configs, Secrets []dataRow
	One              *dataRow // the secret or config shown alone
}

// dataRows reads every object of kind (Config or Secret) as rows. A
// config's values are in its spec; only the keys are kept. A secret's
// object holds no values at all (package hub/secrets keeps them apart).
func dataRows(c *Console, req viewRequest, kind string) ([]dataRow, error) {
	res, err := c.cfg.Store.List(req.ctx, kind, pgstore.ListOptions{Limit: 5000})
	if err != nil {
		return nil, err
	}
	var out []dataRow
	for _, rec := range res.Items {
		out = append(out, dataRowOf(rec))
	}
	return out, nil
}

func dataRowOf(rec *pgstore.Record) dataRow {
	row := dataRow{Kind: rec.Kind, Name: rec.Meta.Name, Created: rec.Meta.CreationTimestamp, Labels: rec.Meta.Labels}
	if rec.Kind == "Config" {
		var cfg api.Config
		_ = rec.Decode(&cfg)
		row.Keys, row.Version = cfg.Spec.Describe(), rec.Meta.Generation
		return row
	}
	var s api.Secret
	_ = rec.Decode(&s)
	row.Keys, row.Version = s.Status.Keys, s.Status.Version
	return row
}

func dataView(c *Console, req viewRequest) (*view, error) {
	var d dataData
	var err error
	if d.Configs, err = dataRows(c, req, "Config"); err != nil {
		return nil, err
	}
	if d.Secrets, err = dataRows(c, req, "Secret"); err != nil {
		return nil, err
	}
	return &view{template: "data", title: "Configs & secrets", active: "Configs & secrets", data: d}, nil
}

// dataOneView shows one config or secret: kind is Config or Secret.
func dataOneView(kind string) viewFunc {
	return func(c *Console, req viewRequest) (*view, error) {
		name := req.params["name"]
		rec, err := c.cfg.Store.Get(req.ctx, kind, name)
		if err != nil {
			if api.ErrorCode(err) == api.CodeNotFound {
				return nil, api.Errorf(api.CodeNotFound, "There is no %s %q (it may have been deleted).", kind, name)
			}
			return nil, err
		}
		row := dataRowOf(rec)
		return &view{template: "data", title: name + " · Configs & secrets", active: "Configs & secrets", data: dataData{One: &row}}, nil
	}
}
