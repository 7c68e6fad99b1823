/* assets.S — the built-in pages and scripts: the demo page, the browser client, the dashboard,
   the widget, and the vendored uPlot (served unless --web-root) */
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
	.global asset_dashboard_html
	.global asset_dashboard_html_end
	.global asset_widget_js
	.global asset_widget_js_end
	.global asset_uplot_js
	.global asset_uplot_js_end
	.global asset_uplot_css
	.global asset_uplot_css_end
asset_dashboard_html:
	.incbin "dashboard.html"
asset_dashboard_html_end:
	.byte 0
/* the widget: the browser client and the widget in one script (http.c) */
asset_widget_js:
	.incbin "poll-client.js"
	.ascii "\n"
	.incbin "poll-widget.js"
asset_widget_js_end:
	.byte 0
asset_uplot_js:
	.incbin "vendor/uPlot.iife.min.js"
asset_uplot_js_end:
	.byte 0
asset_uplot_css:
	.incbin "vendor/uPlot.min.css"
asset_uplot_css_end:
	.byte 0
	.section .note.GNU-stack,"",@progbits
