// The teamc extension: highlighting comes from the static grammar; this starts `teamc lsp` for .team files.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("teamc");
  return { command: config.get("server.path", "teamc"), args: config.get("server.args", ["lsp"]) };
}

async function start() {
  client = new LanguageClient("teamc", "teamc", serverOptions(), {
    documentSelector: [{ scheme: "file", language: "team" }, { scheme: "untitled", language: "team" }],
  });
  try {
    await client.start();
  } catch (err) {
    const command = serverOptions().command;
    vscode.window.showErrorMessage(
      `teamc: could not start \`${command} lsp\` (${err.message}). Install it with ` +
      "pip install 'teamc[lsp]', or set teamc.server.path to the teamc executable.");
  }
}

async function restart() {
  if (client) {
    await client.stop();
  }
  await start();
}

function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("teamc.restartServer", restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("teamc.server")) {
        restart();
      }
    }),
  );
  return start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
