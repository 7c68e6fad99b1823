/* assets.S — the built-in demo page and browser client (served unless --web-root) */
	.section .rodata
	.global asset_index_html
	.global asset_index_html_end
	.global asset_client_js
	.global asset_client_js_end
asset_index_html:
	.incbin "index.html"
asset_index_html_end:
	.byte 0
asset_client_js:
	.incbin "poll-client.js"
asset_client_js_end:
	.byte 0
	.section .note.GNU-stack,"",@progbits
