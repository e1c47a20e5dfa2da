package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

// parseFormat parses a --format Go template as docker does: `\t` and `\n`
// written in the shell are a tab and a newline, and {{json .X}} prints X
// as JSON.
func parseFormat(text string) (*template.Template, error) {
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	tpl, err := template.New("format").Funcs(template.FuncMap{"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("--format: %v", err)
	}
	return tpl, nil
}

// cutTable splits docker's "table" prefix off a --format: with it, a
// header line comes first and columns are aligned.
func cutTable(format string) (text string, table bool) {
	text, table = strings.CutPrefix(format, "table")
	return strings.TrimSpace(text), table
}
