" .team files (teamc) in Vim and Neovim.
autocmd BufRead,BufNewFile *.team setfiletype team
