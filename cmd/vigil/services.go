package main

import (
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/services/activitymatcher"
	"github.com/vigilhq/vigil/services/agentsync"
	"github.com/vigilhq/vigil/services/backend"
	"github.com/vigilhq/vigil/services/eventservice"
	"github.com/vigilhq/vigil/services/extractor"
	"github.com/vigilhq/vigil/services/imageapi"
	"github.com/vigilhq/vigil/services/licensing"
	"github.com/vigilhq/vigil/services/matcher"
	"github.com/vigilhq/vigil/services/tasks"
	"github.com/vigilhq/vigil/services/verifymatcher"
)

// components is the one registry of what a process can run: component name → its fx
// module. `vigil all` runs all of them; `vigil serve a b` runs a and b. Nothing else
// decides what runs where. A component adds exactly one line here.
var components = map[string]fx.Option{
	"activitymatcher": activitymatcher.Module,
	"agentsync":       agentsync.Module,
	"backend":         backend.Module,
	"eventservice":    eventservice.Module,
	"extractor":       extractor.Module,
	"imageapi":        imageapi.Module,
	"licensing":       licensing.Module,
	"matcher":         matcher.Module,
	"tasks":           tasks.Module,
	"verifymatcher":   verifymatcher.Module,
}

// componentOrder is the order modules are given to fx (start order of their hooks;
// stop runs in reverse). Names not in components are skipped.
var componentOrder = []string{
	"licensing", "backend", "tasks", "matcher", "verifymatcher", "imageapi",
	"extractor", "eventservice", "activitymatcher", "agentsync",
}
