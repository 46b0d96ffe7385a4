package cli

const globalFlagsHelp = `
Global flags:
      --apihost HOST     the API host, e.g. http://127.0.0.1:3233 (no scheme means https://)
  -u, --auth KEY         the authorization key UUID:KEY
  -i, --insecure         skip TLS certificate verification
  -v, --verbose          print the requests and responses
  -h, --help             show help

Configuration comes from the flags, then EDDY_APIHOST / EDDY_AUTH, then
~/.wskprops (or the file named by WSK_CONFIG_FILE), written by 'eddy property set'.
`

const usageRoot = `Usage: eddy COMMAND [SUBCOMMAND] [ARGS] [FLAGS]

Work with an Eddy (or any OpenWhisk-compatible) API.

Commands:
  property     work with the CLI's properties (API host, auth key, namespace)
  action       work with actions
  activation   work with activations
  namespace    work with namespaces
  trigger      work with triggers
  rule         work with rules
  status       show an Eddy cluster: schedulers, invokers, queues (Eddy's own)
  help         show help for a command: eddy help action create
` + globalFlagsHelp

const usageProperty = `Usage: eddy property COMMAND [FLAGS]

Commands:
  set      set properties:   --apihost HOST  --auth KEY  --namespace NS  --apiversion V
  get      show properties:  [--all] [--apihost] [--auth] [--namespace] [--apiversion]
                             [--cliversion] [--apibuild] [--apibuildno]
  unset    remove properties: --apihost  --auth  --namespace  --apiversion
` + globalFlagsHelp

const usageAction = `Usage: eddy action COMMAND [ARGS] [FLAGS]

Commands:
  create   create a new action
  update   update an existing action, or create it if it does not exist
  invoke   invoke an action
  get      get an action
  list     list actions
  delete   delete an action

Run 'eddy action COMMAND --help' for a command's flags.
` + globalFlagsHelp

const usageActivation = `Usage: eddy activation COMMAND [ARGS] [FLAGS]

Commands:
  list     list activations
  get      get an activation
  logs     get the logs of an activation
  result   get the result of an activation

Run 'eddy activation COMMAND --help' for a command's flags.
` + globalFlagsHelp

const usageNamespace = `Usage: eddy namespace list

Commands:
  list     list the namespaces of the authorization key
` + globalFlagsHelp

const actionPutFlags = `
Flags:
      --kind KIND            the runtime kind (e.g. python:3.11, nodejs:default); inferred from
                             the file: .py python:default, .js nodejs:default, an executable or a
                             file without extension native:default; a .zip needs --kind
  -m, --memory MB            the memory limit in MB
  -t, --timeout MS           the time limit in milliseconds
  -l, --logsize MB           the log size limit in MB
  -c, --concurrency N        the intra-container concurrency limit
  -p, --param KEY VALUE      a default parameter (VALUE as JSON if it parses, else a string)
  -P, --param-file FILE      default parameters from a JSON object file
  -a, --annotation KEY VALUE an annotation
  -A, --annotation-file FILE annotations from a JSON object file
      --main NAME            the entry point
      --docker IMAGE         run the action in IMAGE (kind blackbox)
      --native               run FILE (a zip with an exec) in the OpenWhisk docker skeleton
      --sequence             FILE is a comma-separated list of actions to run in sequence
      --web true|false|raw   make the action a web action (raw: raw HTTP)
`

var leafUsage = map[string]string{
	"status":         usageStatus,
	"property set":   "Usage: eddy property set [--apihost HOST] [--auth KEY] [--namespace NS] [--apiversion V]\n" + globalFlagsHelp,
	"property get":   "Usage: eddy property get [--all | --apihost | --auth | --namespace | --apiversion | --cliversion | --apibuild | --apibuildno]\n" + globalFlagsHelp,
	"property unset": "Usage: eddy property unset [--apihost] [--auth] [--namespace] [--apiversion]\n" + globalFlagsHelp,
	"action create":  "Usage: eddy action create NAME FILE [FLAGS]\n" + actionPutFlags + globalFlagsHelp,
	"action update": "Usage: eddy action update NAME [FILE] [FLAGS]\n" + actionPutFlags +
		"      --del-annotation KEY   remove an annotation (repeatable)\n" + globalFlagsHelp,
	"action invoke": `Usage: eddy action invoke NAME [FLAGS]

Flags:
  -p, --param KEY VALUE      a parameter (VALUE as JSON if it parses, else a string)
  -P, --param-file FILE      parameters from a JSON object file
  -b, --blocking             wait for the activation and print it
  -r, --result               wait for the activation and print only its result
      --timeout MS           how long the server waits for a blocking activation
` + globalFlagsHelp,
	"action get": `Usage: eddy action get NAME [FIELD] [FLAGS]

Flags:
  -s, --summary              summarize the action
  -r, --url                  print the action's URL
` + globalFlagsHelp,
	"action list": `Usage: eddy action list [NAMESPACE] [FLAGS]

Flags:
  -l, --limit N              list at most N actions (default 30)
  -s, --skip N               skip the first N actions
  -n, --name-sort            sort by name
` + globalFlagsHelp,
	"action delete": "Usage: eddy action delete NAME\n" + globalFlagsHelp,
	"activation list": `Usage: eddy activation list [ACTION_NAME] [FLAGS]

Flags:
  -l, --limit N              list at most N activations (default 30)
  -s, --skip N               skip the first N activations
      --since MS             only activations started after MS (epoch milliseconds)
      --upto MS              only activations started before MS (epoch milliseconds)
  -f, --full                 print the full records
` + globalFlagsHelp,
	"activation get": `Usage: eddy activation get (ID | --last) [FIELD] [FLAGS]

Flags:
  -l, --last                 the most recent activation
  -s, --summary              print only the status and result
` + globalFlagsHelp,
	"activation logs": `Usage: eddy activation logs (ID | --last) [FLAGS]

Flags:
  -l, --last                 the most recent activation
  -r, --strip                strip the timestamp and stream from each line
` + globalFlagsHelp,
	"activation result": `Usage: eddy activation result (ID | --last) [FLAGS]

Flags:
  -l, --last                 the most recent activation
` + globalFlagsHelp,
	"namespace list": "Usage: eddy namespace list\n" + globalFlagsHelp,
}

// leafHelp is a leaf command's help text.
func leafHelp(cmd string) (string, bool) {
	for _, m := range []map[string]string{leafUsage, triggerUsage, ruleUsage} {
		if u, ok := m[cmd]; ok {
			return u, true
		}
	}
	return "", false
}
