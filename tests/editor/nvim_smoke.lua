-- Run by tests/test_editors.py in a headless Neovim: open a .team file with the shipped runtime files
-- (editors/nvim on 'runtimepath'), let the built-in LSP client attach to `teamc lsp`, and write back what
-- the editor shows: filetype, syntax groups, diagnostics and a hover. Exits non-zero on any Lua error.
local request = vim.fn.json_decode(vim.env.TEAMC_NVIM_REQUEST)
local result = {}

local ok, err = pcall(function()
  result.config = dofile("editors/nvim/lsp/teamc.lua")
  require("teamc").setup({ cmd = request.cmd })
  vim.cmd("edit " .. vim.fn.fnameescape(request.file))
  result.filetype = vim.bo.filetype
  result.syntax = {}
  for _, at in ipairs(request.syntax) do
    table.insert(result.syntax, vim.fn.synIDattr(vim.fn.synID(at[1], at[2], 1), "name"))
  end
  result.attached = vim.wait(20000, function() return #vim.lsp.buf_get_clients(0) > 0 end, 50)
  result.waited = vim.wait(20000, function() return #vim.diagnostic.get(0) > 0 end, 50)
  result.diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(0)) do
    local lsp_data = d.user_data and d.user_data.lsp or {}
    table.insert(result.diagnostics, {
      lnum = d.lnum, col = d.col, message = d.message, severity = d.severity,
      code = d.code or lsp_data.code,
    })
  end
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(0) },
    position = { line = request.hover[1], character = request.hover[2] },
  }
  local responses = vim.lsp.buf_request_sync(0, "textDocument/hover", params, 20000) or {}
  result.hover = {}
  for _, response in pairs(responses) do
    if response.result then
      table.insert(result.hover, response.result.contents.value)
    end
  end
end)
if not ok then
  result.error = tostring(err)
end
vim.fn.writefile({ vim.fn.json_encode(result) }, request.out)
for _, client in pairs(vim.lsp.get_active_clients()) do
  client.stop()
end
vim.wait(5000, function() return #vim.lsp.get_active_clients() == 0 end, 50)
vim.cmd(ok and "qall!" or "cquit 1")
