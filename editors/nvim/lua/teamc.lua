-- teamc's language server for Neovim 0.7 to 0.10 (0.11+ can use lsp/teamc.lua with vim.lsp.enable instead).
--   require("teamc").setup()                         -- runs `teamc lsp` for every `team` buffer
--   require("teamc").setup({ cmd = { "/path/to/teamc", "lsp" } })
local M = {}

local function root_dir(path)
  local found = vim.fn.finddir(".git", vim.fn.fnamemodify(path, ":p:h") .. ";")
  if found ~= "" then
    return vim.fn.fnamemodify(found, ":p:h:h")
  end
  return vim.fn.fnamemodify(path, ":p:h")
end

function M.setup(opts)
  opts = opts or {}
  local config = {
    name = "teamc",
    cmd = opts.cmd or { "teamc", "lsp" },
    on_attach = opts.on_attach,
    capabilities = opts.capabilities,
  }
  vim.api.nvim_create_autocmd("FileType", {
    pattern = "team",
    callback = function(args)
      local buffer_config = vim.tbl_extend("force", config, { root_dir = root_dir(vim.api.nvim_buf_get_name(args.buf)) })
      if vim.lsp.start then -- 0.8+: reuses a running client with the same name and root
        vim.lsp.start(buffer_config, { bufnr = args.buf })
      else
        M.client_id = M.client_id or vim.lsp.start_client(buffer_config)
        vim.lsp.buf_attach_client(args.buf, M.client_id)
      end
    end,
  })
end

return M
