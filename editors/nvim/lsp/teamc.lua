-- teamc's language server for Neovim 0.11+: put editors/nvim on 'runtimepath', then vim.lsp.enable("teamc").
return {
  cmd = { "teamc", "lsp" },
  filetypes = { "team" },
  root_markers = { ".git" },
}
