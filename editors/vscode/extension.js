// Starts `dyn lsp` (stdio) for .dyn files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("dyn");
  const command = config.get("server.path", "dyn");
  const env = Object.assign({}, process.env, config.get("server.extraEnv", {}));
  const server = { command, args: ["lsp"], options: { env } };
  client = new LanguageClient(
    "dyn",
    "dyn language server",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "dyn" }, { scheme: "untitled", language: "dyn" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
