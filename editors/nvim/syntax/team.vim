" Vim syntax file for the .team language of teamc (Vim and Neovim).
" Keywords are keywords where a statement starts, as in the parser; elsewhere a word is a value.
if exists("b:current_syntax")
  finish
endif

syn match teamComment "#.*$" contains=@Spell
syn region teamString start=+"+ skip=+\\.+ end=+"+ end=+$+ contains=teamEscape oneline
syn match teamEscape +\\.+ contained

" A statement starts a line or follows `{` or `;`.
syn match teamBlock "\%(^\|[{;]\)\s*\zs\<\%(vm\|team\|nic\)\>\ze\s" nextgroup=teamName skipwhite
syn match teamName "[^[:space:]{};#\"]\+" contained
syn match teamSetting "\%(^\|[{;]\)\s*\zs\%(uuid\|machine\|arch\|memory\|vcpus\|emulator\|accel\|allow\|mac\|model\|address\|boot\|mtu\|managed\|source\|rom\|vlan\|virtualport\|bandwidth\|port\|target\|driver\|backend\|filterref\|tune\|link\|coalesce\|acpi\|trust-guest-rx-filters\|libvirt\)\ze\%(\s\|;\|}\|$\)"
syn match teamRole "\%(^\|[{;]\)\s*\zs\%(persistent\|transient\)\ze\s"
syn match teamTeaming "\%(^\|[{;]\)\s*\zs\<teaming\>\ze\s" nextgroup=teamTeamingRole skipwhite
syn match teamTeamingRole "\%(persistent\|transient\)" contained nextgroup=teamReference skipwhite
syn match teamReference "[^[:space:]{};#\"]\+" contained
syn match teamSourceKind "\s\zs\%(user\|ethernet\|vhostuser\|bridge\|network\|direct\|hostdev\|pci-hostdev\)\ze\%(\s\|;\|}\|$\)"
syn match teamOption "\s\zs\%(mode\|vf\|portgroup\|bar\|file\|enabled\)\ze\s"
syn match teamMac "\<\x\x\%(:\x\x\)\{5}\>"
syn match teamPci "\<\%(\x\{1,8}:\)\=\x\{1,4}:\x\{1,4}\.\x\{1,2}\>"
syn match teamNumber "\s\zs\d\+\ze\%(\s\|;\|}\|$\)"
syn match teamUnit "\d\s\+\zs\%(B\|KiB\|MiB\|GiB\|TiB\|KB\|MB\|GB\|TB\|k\|K\|M\|G\|T\)\ze\%(\s\|;\|}\|$\)"
syn match teamConstant "\s\zs\%(yes\|no\|on\|off\)\ze\%(\s\|;\|}\|$\)"

hi def link teamComment Comment
hi def link teamString String
hi def link teamEscape SpecialChar
hi def link teamBlock Keyword
hi def link teamName Identifier
hi def link teamSetting Statement
hi def link teamRole StorageClass
hi def link teamTeaming Statement
hi def link teamTeamingRole StorageClass
hi def link teamReference Identifier
hi def link teamSourceKind Type
hi def link teamOption Statement
hi def link teamMac Constant
hi def link teamPci Constant
hi def link teamNumber Number
hi def link teamUnit Type
hi def link teamConstant Boolean

let b:current_syntax = "team"
